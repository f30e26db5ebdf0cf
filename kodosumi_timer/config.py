"""Settings of kodosumi-timer, read like kodosumi's own: prefix ``KODO_``, ``.env`` aware.

Nothing is read at import time; call :func:`get_settings` (or build ``TimerSettings``
with explicit values in tests).
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TimerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KODO_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # the schedule store; PostgreSQL works with postgresql+asyncpg://...
    TIMER_DATABASE: str = "sqlite+aiosqlite:///./data/schedule.db"
    # longest sleep of the timer loop when nothing is due and no wake-up arrives
    TIMER_INTERVAL: float = Field(60.0, gt=0)
    # the panel the timer launches executions through (kodosumi's proxy)
    TIMER_PANEL_URL: str = "http://localhost:3370"
    # lifetime of the owner tokens the timer mints for one launch and its follow-up
    TIMER_TOKEN_TTL: int = Field(900, gt=0)
    # the user system schedules run as (not a kodosumi role)
    TIMER_USER: str = "timer"
    # system schedules (issue 6): the operators' YAML file, checked for changes this
    # often (seconds); flows' own x-kodosumi-schedule declarations, asked this often
    TIMER_SCHEDULES: str = "./data/config/schedules.yaml"
    TIMER_SCHEDULES_CHECK: float = Field(5.0, gt=0)
    TIMER_FLOW_SCHEDULES: bool = True
    TIMER_DISCOVERY_INTERVAL: float = Field(60.0, gt=0)
    TIMER_LOG_FILE: str = "./data/timer.log"
    # launch attempts within one slot before the run is recorded failed
    TIMER_LAUNCH_ATTEMPTS: int = Field(3, ge=1)
    # slots due within this many seconds are claimed ahead and launched at their instant
    # (the store's latency is then spent before the slot, not after it)
    TIMER_CLAIM_AHEAD: float = Field(1.0, ge=0)
    # how often running executions are polled for their final status
    TIMER_FOLLOW_INTERVAL: float = Field(2.0, gt=0)
    # most schedules one user may own
    TIMER_MAX_SCHEDULES: int = Field(1000, ge=1)
    # a claimed run is its timer's for this many seconds, renewed while the timer lives;
    # a timer that stops, dies or stalls longer loses its runs to another timer
    TIMER_LEASE: float = Field(30.0, ge=5)
    # scheduled executions launched and not ended, at most (empty: no cap); slots over
    # it wait as `queued`, served in turn by owner
    TIMER_MAX_RUNNING: int | None = Field(None, ge=1)
    # launch requests in flight at once, at most; below it the timer learns how many
    # kodosumi takes from its answers
    TIMER_MAX_IN_FLIGHT: int = Field(32, ge=1)
    # kodosumi answering a launch slower than this (seconds) counts as overloaded
    TIMER_LATENCY_TARGET: float = Field(2.0, gt=0)
    # seconds the timer waits for the panel's answer to a launch
    TIMER_LAUNCH_TIMEOUT: float = Field(30.0, gt=0)

    # run history (issue 12): each schedule keeps its newest KEEP_RUNS runs and none
    # older than KEEP_DAYS days; the rest is pruned every PRUNE_EVERY seconds
    TIMER_KEEP_RUNS: int = Field(1000, ge=1)
    TIMER_KEEP_DAYS: float = Field(90.0, gt=0)
    TIMER_PRUNE_EVERY: float = Field(300.0, gt=0)

    # notifications (issue 12): URL prefixes, comma-separated, that deliveries may reach
    # although they are private, loopback or link-local (e.g. http://127.0.0.1)
    TIMER_NOTIFY_ALLOW: str = ""
    # GET /metrics (issue 12) is open to scrapers unless this is set; then it asks for
    # "Authorization: Bearer <this token>"
    TIMER_METRICS_TOKEN: str | None = None
    # trigger URLs (issue 13): calls one URL takes per minute, at most (per panel process)
    TIMER_HOOK_RATE: int = Field(6, ge=1)

    # the commands (issue 17): refuse kodosumi's default secret unless this is true; how
    # long a command waits for Ray, the store or the panel before it says it cannot reach
    # them; where `koco-timer login` keeps its tokens (default
    # $XDG_CONFIG_HOME/kodosumi-timer/auth.json, i.e. ~/.config/...)
    TIMER_ALLOW_DEFAULT_SECRET: bool = False
    TIMER_CONNECT_TIMEOUT: float = Field(3.0, gt=0)
    TIMER_AUTH_FILE: str | None = None

    # kodosumi's own settings the timer needs (same names as kodosumi's); the secret
    # signs the owner tokens and must be the panel's
    SECRET_KEY: str = "top secret -- change this in production"
    ADMIN_DATABASE: str = "sqlite+aiosqlite:///./data/admin.db"
    RAY_SERVER: str = "localhost:6379"
    APP_SERVER: str = "http://localhost:3370"


def get_settings(**overrides: object) -> TimerSettings:
    return TimerSettings(**overrides)  # type: ignore[arg-type]
