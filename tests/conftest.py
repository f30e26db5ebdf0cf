"""Shared fixtures: a fresh schedule store on SQLite and, for real, on PostgreSQL."""

import os
import tempfile
import warnings

import pytest

# the real stack (session-scoped) for integration and browser tests
pytest_plugins = ["tests.stack_fixtures", "tests.node_loss_flag"]

# kodosumi creates its directories when its settings are first read: keep them in tmp
_KODO_TMP = tempfile.mkdtemp(prefix="kodo-timer-tests-")
os.environ.setdefault("KODO_EXEC_DIR", os.path.join(_KODO_TMP, "execution"))
os.environ.setdefault("KODO_SPOOLER_LOG_FILE", os.path.join(_KODO_TMP, "spooler.log"))
os.environ.setdefault("KODO_YAML_BASE", os.path.join(_KODO_TMP, "config", "config.yaml"))
os.environ.setdefault("KODO_APP_LOG_FILE", os.path.join(_KODO_TMP, "app.log"))

PG_URL = os.environ.get("KODO_TIMER_TEST_PG")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_report_header(config: pytest.Config) -> str:
    if PG_URL:
        return f"PostgreSQL tests: ON ({PG_URL.split('@')[-1]})"
    return ("PostgreSQL tests: SKIPPED -- set KODO_TIMER_TEST_PG=postgresql+asyncpg://... "
            "(bash .ci/run does)")


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    if not PG_URL:
        terminalreporter.write_sep(
            "!", "PostgreSQL store tests were SKIPPED: KODO_TIMER_TEST_PG is not set", red=True)


def require_pg() -> str:
    if PG_URL:
        return PG_URL
    if IN_CI:
        pytest.fail("CI=true but KODO_TIMER_TEST_PG is not set: PostgreSQL tests cannot run")
    warnings.warn("PostgreSQL test skipped: KODO_TIMER_TEST_PG is not set", stacklevel=2)
    pytest.skip("KODO_TIMER_TEST_PG is not set (PostgreSQL tests skipped)")


async def _reset_pg(url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    async with engine.begin() as conn:
        for table in ("schedule_change", "schedule_run", "schedule", "schedule_alembic_version",
                      "notification", "notify_cursor", "schedule_seen", "user_settings"):
            await conn.execute(text(f"DROP TABLE IF EXISTS {table} CASCADE"))
    await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def store_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/schedule.db"
    url = require_pg()
    await _reset_pg(url)
    return url


@pytest.fixture
async def store(store_url: str):  # type: ignore[no-untyped-def]
    from kodosumi_timer.store import open_store

    s = await open_store(store_url)
    yield s
    await s.close()
