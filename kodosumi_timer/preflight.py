"""Checks a command makes before it relies on Ray, the store or the secret: each fails
within seconds with one line that names what could not be reached and the setting
that names it, instead of a library's retries and stack traces."""

import asyncio
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

#: kodosumi's default ``SECRET_KEY`` (kodosumi.config.Settings): with it, anyone can
#: mint a token for any user.
DEFAULT_SECRET = "top secret -- change this in production"


class PreflightError(RuntimeError):
    """Something a command needs is missing or unsafe; the message says what and which
    setting names it."""


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for output, logs and meta)."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def check_secret(secret: str, allow_default: bool, what: str) -> None:
    """Refuse kodosumi's default secret unless the operator allowed it explicitly."""
    if secret == DEFAULT_SECRET and not allow_default:
        raise PreflightError(
            f"{what} refuses to start with kodosumi's default secret key: anyone could sign "
            "in as any user. Set KODO_SECRET_KEY (the same for the panel and the timer), or "
            "KODO_TIMER_ALLOW_DEFAULT_SECRET=true to run with it anyway")


def tcp_answers(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def endpoint_of(address: str) -> tuple[str, int] | None:
    """Host and port of an address (``host:port``, ``ray://host:port``, a URL with a
    port); None without a port (Ray's ``auto``, ``local``)."""
    text = address.strip()
    if "://" not in text:
        text = f"tcp://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname, port


def probe_ray(address: str, timeout: float) -> None:
    """A short TCP connect to the cluster's GCS (or client server): Ray itself would
    retry, and print warnings, for minutes."""
    endpoint = endpoint_of(address)
    if endpoint is not None and not tcp_answers(*endpoint, timeout):
        raise PreflightError(f"no Ray cluster answers at {address} (KODO_RAY_SERVER)")


async def _connect(url: str, timeout: float | None, existing: bool) -> None:
    from sqlalchemy import text

    from kodosumi_timer.store.repository import make_engine

    engine = make_engine(url)

    async def select_one() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            if existing:
                await conn.execute(text("SELECT 1 FROM schedule WHERE 1 = 0"))

    try:
        await asyncio.wait_for(select_one(), timeout)
    finally:
        await engine.dispose()


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else type(inner).__name__
    return text[:200]


def _sqlite_file(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def probe_store(url: str, timeout: float, existing: bool = False) -> None:
    """Open one connection to the schedule store and close it. Only a database server
    gets ``timeout``: a SQLite file fails at once if at all (on a busy machine its
    thread may start slowly; that is no reason to refuse).

    ``existing``: the command only reads a store someone else made (``status``): one
    that does not exist or holds no schedules is refused, and no empty file is left
    behind (started in another directory, ``./data/schedule.db`` is not the timer's)."""
    where = f"the schedule store at {mask_url(url)} (KODO_TIMER_DATABASE)"
    hint = "; run this where the timer runs (for the demo: source data/demo.sh in its " \
           "directory) or set KODO_TIMER_DATABASE"
    path = _sqlite_file(url)
    if existing and path is not None and not path.is_file():
        raise PreflightError(f"{where} does not exist{hint}")
    network = path is None and not url.startswith("sqlite")
    try:
        asyncio.run(_connect(url, timeout if network else None, existing))
    except TimeoutError as exc:
        raise PreflightError(f"{where} did not answer within {timeout:g} s") from exc
    except Exception as exc:
        reason = mask_url(_reason(exc))
        if existing and "schedule" in reason:
            raise PreflightError(f"{where} holds no schedules ({reason}){hint}") from exc
        raise PreflightError(f"cannot open {where}: {reason}") from exc
