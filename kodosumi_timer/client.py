"""A client of the panel's ``/schedule`` API for the user commands, and the tokens
``koco-timer login`` keeps.

kodosumi keeps a login as a token (the ``kodosumi_jwt`` cookie in the browser, the
``KODOSUMI_API_KEY`` header for API clients; it lives a day) and never the password. The
CLI does the same: one token per panel URL in a file only its owner can read.
"""

import base64
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

HEADER_KEY = "KODOSUMI_API_KEY"  # kodosumi.const.HEADER_KEY
FULL_ID = re.compile(r"^[0-9a-f]{32}$")
MIN_PREFIX = 4


class ClientError(RuntimeError):
    """A failed command, said in one line; ``field`` is the API's name of the input at
    fault, when it named one (the CLI says which option that is)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def default_auth_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join("~", ".config")
    return Path(base).expanduser() / "kodosumi-timer" / "auth.json"


def normal_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    return url


def token_expiry(token: str) -> datetime | None:
    """The ``exp`` of a JWT, read without verifying it (only to tell the user)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return datetime.fromtimestamp(float(claims["exp"]), UTC)
    except (IndexError, KeyError, ValueError, TypeError):
        return None


@dataclass
class Login:
    url: str
    name: str
    user_id: str
    token: str

    @property
    def expires(self) -> datetime | None:
        return token_expiry(self.token)


class Credentials:
    """Tokens per panel URL, and the URL of the last login (the default panel)."""

    def __init__(self, path: Path):
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"current": None, "panels": {}}
        except (OSError, ValueError) as exc:
            raise ClientError(f"cannot read {self.path}: {exc}; delete it and log in "
                              "again") from exc
        return data if isinstance(data, dict) else {"current": None, "panels": {}}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=2)
        os.replace(tmp, self.path)

    @property
    def current(self) -> str | None:
        url = self._read().get("current")
        return url if isinstance(url, str) else None

    def get(self, url: str) -> Login | None:
        entry = self._read().get("panels", {}).get(url)
        if not isinstance(entry, dict) or not entry.get("token"):
            return None
        return Login(url, entry.get("name", "?"), entry.get("id", ""), entry["token"])

    def save(self, login: Login) -> None:
        data = self._read()
        data.setdefault("panels", {})[login.url] = {
            "name": login.name, "id": login.user_id, "token": login.token}
        data["current"] = login.url
        self._write(data)

    def forget(self, url: str) -> bool:
        data = self._read()
        found = data.get("panels", {}).pop(url, None) is not None
        if data.get("current") == url:
            data["current"] = next(iter(data.get("panels", {})), None)
        if found:
            self._write(data)
        return found


def _error_line(response: httpx.Response) -> str:
    """The API's ``detail`` (and ``field``), or the status when the body is not ours."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        detail = body["detail"].strip().splitlines()[0] if body["detail"].strip() else ""
        field = body.get("field")
        if field and str(field) not in detail:
            detail = f"{field}: {detail}"
        return detail or f"{response.status_code} {response.reason_phrase}"
    return f"the panel answered {response.status_code} {response.reason_phrase}"


def _error_field(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    field = body.get("field") if isinstance(body, dict) else None
    return field if isinstance(field, str) and field else None


class PanelClient:
    """Synchronous calls to one panel; every failure becomes a :class:`ClientError`."""

    def __init__(self, url: str, token: str | None, *, connect_timeout: float = 3.0,
                 url_hint: str = "--url"):
        self.url = normal_url(url)
        self.token = token
        self.url_hint = url_hint
        headers = {HEADER_KEY: token} if token else {}
        # a panel that is not there is said at once; one that is may take its time
        timeout = httpx.Timeout(30.0, connect=connect_timeout)
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ClientError(f"no panel answers at {self.url} ({self.url_hint})") from exc
        except httpx.TimeoutException as exc:
            raise ClientError(f"the panel at {self.url} did not answer in time") from exc
        except httpx.TransportError as exc:
            raise ClientError(f"the connection to the panel at {self.url} failed: "
                              f"{type(exc).__name__}") from exc

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._send(method, path, **kwargs)
        if response.status_code == 401:
            raise ClientError(f"not logged in at {self.url}, or the login expired: run "
                              f"`koco-timer login --url {self.url}`")
        if response.status_code >= 500:
            raise ClientError(f"the panel failed on {method} {path} "
                              f"({response.status_code}): {_error_line(response)}")
        if response.status_code >= 400:
            raise ClientError(_error_line(response), field=_error_field(response))
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ClientError(f"{self.url}{path} did not answer with JSON; is this a kodosumi "
                              "panel with kodosumi-timer?") from exc

    # -- login -----------------------------------------------------------------------

    def login(self, name: str, password: str) -> Login:
        response = self._send("POST", "/api/login", json={"name": name, "password": password})
        if response.status_code in (401, 403):
            raise ClientError(f"login at {self.url} refused: invalid name or password, or "
                              "the user is not active")
        if response.status_code == 404:
            raise ClientError(f"{self.url} is not a kodosumi panel (no /api/login)")
        if response.status_code >= 400:
            raise ClientError(f"login at {self.url} failed: {_error_line(response)}")
        try:
            body = response.json()
            return Login(self.url, str(body["name"]), str(body["id"]), str(body[HEADER_KEY]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ClientError(f"{self.url} answered the login without a token; is it a "
                              "kodosumi panel?") from exc

    # -- schedules -------------------------------------------------------------------

    def schedules(self, **params: Any) -> dict[str, Any]:
        query = {k: _query_value(v) for k, v in params.items() if v is not None}
        return self.json("GET", "/schedule/", params=query)  # type: ignore[no-any-return]

    def all_schedules(self, **params: Any) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self.schedules(limit=500, offset=offset, **params)
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return

    def schedule(self, schedule_id: str) -> dict[str, Any]:
        return self.json("GET", f"/schedule/{schedule_id}")  # type: ignore[no-any-return]

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.json("POST", "/schedule/", json=body)  # type: ignore[no-any-return]

    def pause(self, schedule_id: str) -> dict[str, Any]:
        return self.json("POST", f"/schedule/{schedule_id}/pause")  # type: ignore[no-any-return]

    def resume(self, schedule_id: str) -> dict[str, Any]:
        return self.json("POST", f"/schedule/{schedule_id}/resume")  # type: ignore[no-any-return]

    def trigger(self, schedule_id: str, force: bool) -> dict[str, Any]:
        params = {"force": "true"} if force else {}
        return self.json(  # type: ignore[no-any-return]
            "POST", f"/schedule/{schedule_id}/trigger", params=params)

    def delete(self, schedule_id: str) -> None:
        self.json("DELETE", f"/schedule/{schedule_id}")

    def runs(self, schedule_id: str, limit: int, offset: int = 0) -> dict[str, Any]:
        return self.json(  # type: ignore[no-any-return]
            "GET", f"/schedule/{schedule_id}/runs", params={"limit": limit, "offset": offset})

    def flows(self) -> list[dict[str, Any]]:
        """Every flow the panel lists (kodosumi's ``GET /flow``, paged by uid)."""
        found: list[dict[str, Any]] = []
        offset: str | None = None
        while True:
            params: dict[str, Any] = {"pp": 100}
            if offset:
                params["offset"] = offset
            page = self.json("GET", "/flow", params=params)
            found.extend(page.get("items", []))
            offset = page.get("offset")
            if not offset:
                return found

    # -- what people type ------------------------------------------------------------

    def resolve_id(self, given: str) -> str:
        """A full schedule id from an id or a unique prefix of one (like git and docker)."""
        wanted = given.strip().lower().replace("-", "")
        if FULL_ID.match(wanted):
            return wanted
        if len(wanted) < MIN_PREFIX or not re.fullmatch(r"[0-9a-f]+", wanted):
            raise ClientError(f"{given!r} is not a schedule id (give at least {MIN_PREFIX} of "
                              "its characters, as `koco-timer ls` shows them)")
        try:
            candidates = list(self.all_schedules(all="true"))
        except ClientError:  # not an operator: one's own and the system schedules
            candidates = list(self.all_schedules()) + list(self.all_schedules(system="true"))
        ids = sorted({str(s["id"]) for s in candidates if s["id"].startswith(wanted)})
        if not ids:
            raise ClientError(f"no schedule you can see has an id starting with {given}")
        if len(ids) > 1:
            raise ClientError(f"{given} matches {len(ids)} schedules ({', '.join(ids[:5])}); "
                              "give more characters")
        return ids[0]

    def resolve_flow(self, given: str) -> str:
        """A flow URL from a URL (kept as given) or a name: the flow's route
        (``quick`` for ``/-/127.0.0.1/8001/quick/-/``) or its summary."""
        if given.startswith("/") or "://" in given:
            return given
        wanted = given.strip().lower()
        flows = self.flows()
        matches = sorted({str(f["url"]) for f in flows
                          if wanted in (flow_name(f["url"]).lower(),
                                        str(f.get("summary") or "").strip().lower())})
        if len(matches) == 1:
            return matches[0]
        if not matches:
            names = ", ".join(sorted({flow_name(f["url"]) for f in flows})) or "none"
            raise ClientError(f"no flow named {given!r} (flows: {names}); "
                              "`koco-timer flows` lists them with their URLs")
        raise ClientError(f"{given!r} names {len(matches)} flows ({', '.join(matches)}); "
                          "give its URL")


def flow_name(url: str) -> str:
    """The route of a flow URL: ``/-/127.0.0.1/8001/quick/-/`` -> ``quick``."""
    parts = [p for p in url.split("/") if p and p != "-"]
    # kodosumi's proxy URLs are /-/<host>/<port>/<route...>/-/
    return "/".join(parts[2:]) if len(parts) > 2 and parts[1].isdigit() else "/".join(parts)


def _query_value(value: Any) -> Any:
    return ("true" if value else "false") if isinstance(value, bool) else value
