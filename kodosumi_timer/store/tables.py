"""SQLAlchemy tables of the schedule store.

Every instant is an aware UTC datetime in Python. SQLite has no time zones, so
:class:`UTCDateTime` stores naive UTC there and re-attaches UTC on the way out;
PostgreSQL keeps ``timestamptz``.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ScheduleRow(Base):
    __tablename__ = "schedule"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), nullable=False)
    system: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    expose_name: Mapped[str] = mapped_column(String(200), nullable=False)
    flow_url: Mapped[str] = mapped_column(String(1000), nullable=False)
    title: Mapped[str | None] = mapped_column(String(200))
    schedule_type: Mapped[str] = mapped_column(String(8), nullable=False)
    cron_expression: Mapped[str | None] = mapped_column(String(1000))
    run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    # active | paused | done; only active schedules carry a next_run
    state: Mapped[str] = mapped_column(String(8), nullable=False, default="active")
    catchup: Mapped[str] = mapped_column(String(8), nullable=False, default="once")
    overlap: Mapped[str] = mapped_column(String(16), nullable=False, default="skip")
    # a slot launched later than this many seconds after it is missed (catchup rules)
    catchup_window: Mapped[int] = mapped_column(Integer, nullable=False, default=60,
                                                server_default="60")
    end_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    max_runs: Mapped[int | None] = mapped_column(Integer)
    run_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_run: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_fid: Mapped[str | None] = mapped_column(String(64))
    last_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # system schedules synced by kodosumi_timer.system (migration 0002): where the
    # schedule was declared (file | flow) and its sync key (the flow URL); NULL otherwise
    system_source: Mapped[str | None] = mapped_column(String(8))
    system_key: Mapped[str | None] = mapped_column(String(1000))
    # issue 13 (migration 0005): interval rules (anchor + k * every_seconds), dates in
    # the zone without slots, the DST policy (NULL: Debian's), a send offset in
    # [0, jitter) s, the run timeout, pausing after failures in a row, the trigger URL
    every_seconds: Mapped[int | None] = mapped_column(Integer)
    anchor: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exclude_dates: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    dst_gap: Mapped[str | None] = mapped_column(String(8))
    dst_repeat: Mapped[str | None] = mapped_column(String(8))
    jitter: Mapped[int | None] = mapped_column(Integer)
    timeout: Mapped[int | None] = mapped_column(Integer)
    pause_after_failures: Mapped[int | None] = mapped_column(Integer)
    failures_in_row: Mapped[int] = mapped_column(Integer, nullable=False, default=0,
                                                 server_default="0")
    hook_hash: Mapped[str | None] = mapped_column(String(64))
    hook_inputs: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False,
                                              server_default=false())
    # notifications (migration 0006): where to POST, on which events (stored as
    # ",error,failed," so that the store can match a run's status with LIKE), and the
    # secret deliveries are signed with; all NULL when the schedule notifies nobody
    notify_url: Mapped[str | None] = mapped_column(String(2000))
    notify_events: Mapped[str | None] = mapped_column(String(200))
    notify_secret: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        Index("ix_schedule_owner", "owner"),
        # one synced system schedule per flow, even with several timers on one store
        Index("ux_schedule_system_key", "system_key", unique=True),
        # the timer's due query walks this index; paused and done rows have no next_run
        Index("ix_schedule_next_run", "next_run"),
        Index("ux_schedule_hook_hash", "hook_hash", unique=True),
    )


class RunRow(Base):
    __tablename__ = "schedule_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(String(32), nullable=False)
    owner: Mapped[str] = mapped_column(String(64), nullable=False)
    slot: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    trigger: Mapped[str] = mapped_column(String(8), nullable=False, default="timer")
    # unknown (claimed, launch result not yet known) | launched | running | finished
    # | error | skipped | missed | rejected | failed
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fid: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timer_id: Mapped[str | None] = mapped_column(String(64))
    # a claim belongs to timer_id until then; afterwards another timer may take it over
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the inputs this run launches with when they are not its schedule's (a trigger URL's
    # call merged its own over them; migration 0007); NULL: the schedule's
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))

    __table_args__ = (
        # exactly once per slot: a second claim of the same slot cannot be inserted
        UniqueConstraint("schedule_id", "slot", "attempt", name="uq_run_slot_attempt"),
        Index("ix_run_schedule", "schedule_id", "slot"),
        Index("ix_run_status", "status"),
        # the notifier reads the runs that ended recently (migration 0006)
        Index("ix_run_finished", "finished_at"),
    )


class ChangeRow(Base):
    """Who changed what on a schedule (migration 0004); deleted with the schedule."""

    __tablename__ = "schedule_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(String(32), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # the role id of who did it (the timer user for system sync)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    # create | edit | pause | resume | trigger
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    # {field: [old, new]} as JSON values; empty for actions without field changes
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)

    __table_args__ = (Index("ix_change_schedule", "schedule_id", "id"),)


class NotificationRow(Base):
    """One delivery of a schedule's notification (migration 0006): the outbox the
    notifier reads; deleted with the schedule by the notifier."""

    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(String(32), nullable=False)
    run_id: Mapped[int | None] = mapped_column(Integer)
    # error | failed | rejected | unknown | missed | paused | finished
    event: Mapped[str] = mapped_column(String(16), nullable=False)
    # pending | delivered | failed
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # when the next attempt is due; a delivery in hand holds it a lease ahead
    next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # the JSON body, fixed when it is queued: every attempt sends the very same bytes
    # (signed with the schedule's secret at the time of sending)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    created: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    delivered: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # where the target came from (migration 0008): "schedule" (its own notify) or
    # "default" (its owner's default, read again at each attempt)
    source: Mapped[str] = mapped_column(String(8), nullable=False, default="schedule",
                                        server_default="schedule")

    __table_args__ = (
        # a run's event is queued once, however often (and by how many notifiers) it is seen
        UniqueConstraint("run_id", "event", name="uq_notification_run_event"),
        # the work: pending deliveries by due time
        Index("ix_notification_due", "status", "next_at"),
        Index("ix_notification_schedule", "schedule_id", "run_id"),
    )


class NotifyCursorRow(Base):
    """How far the notifier has read the runs that ended (migration 0006), so that a
    restart goes on where it left off."""

    __tablename__ = "notify_cursor"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class SeenRow(Base):
    """When a user last looked at their schedules (migration 0005): the panel counts
    their failed runs since then in the navigation."""

    __tablename__ = "schedule_seen"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class UserSettingsRow(Base):
    """A user's default notification for their schedules that have no ``notify`` of
    their own (migration 0008); one row per owner, NULL url: no default."""

    __tablename__ = "user_settings"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    notify_url: Mapped[str | None] = mapped_column(String(2000))
    # stored like ScheduleRow.notify_events: ",error,failed,"
    notify_events: Mapped[str | None] = mapped_column(String(200))
    notify_secret: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
