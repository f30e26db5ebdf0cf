"""``GET /metrics``: the timer's figures and the store's, in the Prometheus text format.

The timer is another process or a Ray actor: its figures come from its lock actor on
the cluster the panel is connected to (:func:`ray_timer_meta`); with no timer running
the scrape still answers, ``kodosumi_timer_up 0``. Scrapers have no kodosumi login, so
the route is open unless ``KODO_TIMER_METRICS_TOKEN`` is set; then it asks for
``Authorization: Bearer <token>``. Each scrape renders into a registry of its own:
nothing global is shared between apps (or tests).
"""

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from litestar import Request, Response, get
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from kodosumi_timer import __version__
from kodosumi_timer.lock import find_lock
from kodosumi_timer.metrics import facts, store_figures
from kodosumi_timer.panel.services import services_from

log = logging.getLogger("kodosumi_timer.panel")

# app.state key of the function that reads the timer's meta (tests hand in their own)
TIMER_META_KEY = "kodosumi_timer_meta"
# a timer actor that does not answer this fast is reported down rather than hold the scrape
META_TIMEOUT = 2.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

TimerMeta = Callable[[], Awaitable[dict[str, Any] | None]]


async def ray_timer_meta() -> dict[str, Any] | None:
    """The running timer's meta from its lock actor, or None (no timer, no Ray)."""
    import ray

    if not ray.is_initialized():  # never start a Ray of our own for a scrape
        return None
    try:
        actor = await asyncio.to_thread(find_lock)
        if actor is None:
            return None
        return await asyncio.wait_for(_meta_of(actor), META_TIMEOUT)
    except Exception:  # a dying actor, a timeout: the timer is not up
        log.debug("the timer's figures could not be read", exc_info=True)
        return None


async def _meta_of(actor: Any) -> dict[str, Any]:
    return await actor.get_meta.remote()  # type: ignore[no-any-return]


class FactsCollector:
    """A prometheus_client collector of one set of :func:`kodosumi_timer.metrics.facts`."""

    def __init__(self, facts: dict[str, Any]):
        self.facts = facts

    def collect(self) -> Iterable[Metric]:
        timer = self.facts["timer"]
        yield GaugeMetricFamily("kodosumi_timer_up", "1 while a timer is registered on the "
                                "cluster and answers, else 0", value=int(timer["up"]))
        if timer["up"]:
            yield from self._timer(timer)
        yield from self._store()

    def _timer(self, timer: dict[str, Any]) -> Iterable[Metric]:
        info = GaugeMetricFamily("kodosumi_timer_info", "The running timer (always 1)",
                                 labels=["mode", "host", "pid", "version", "node_id",
                                         "node_ip"])
        info.add_metric([str(timer["mode"]), str(timer["host"]), str(timer["pid"]),
                         str(timer["version"]), str(timer.get("node_id") or ""),
                         str(timer.get("node_ip") or "")], 1)
        yield info
        if timer.get("started") is not None:
            yield GaugeMetricFamily("kodosumi_timer_start_time_seconds",
                                    "When the timer started (Unix time)", value=timer["started"])
        if timer.get("heartbeat") is not None:
            yield GaugeMetricFamily(
                "kodosumi_timer_last_heartbeat_timestamp_seconds",
                "The timer's last turn of its loop (Unix time)", value=timer["heartbeat"])
            yield GaugeMetricFamily(
                "kodosumi_timer_heartbeat_age_seconds",
                "Seconds since the timer's last turn (normally below 10)",
                value=timer["heartbeat_age_seconds"])
        yield CounterMetricFamily("kodosumi_timer_fires", "Slots and run-now requests the "
                                  "timer took to launch since it started", value=timer["fires"])
        yield CounterMetricFamily(
            "kodosumi_timer_launch_failures", "Launches that did not start an execution, and "
            "schedules paused as unrunnable, since the timer started", value=timer["failures"])
        if "store_errors" not in timer:  # a timer of a version that publishes no figures
            return
        yield CounterMetricFamily(
            "kodosumi_timer_store_errors", "Turns of the timer's loop that failed (the store "
            "did not answer or refused) since it started", value=timer["store_errors"])
        yield GaugeMetricFamily("kodosumi_timer_launches_waiting",
                                "Launches due and waiting for capacity (pacing)",
                                value=timer["waiting"])
        yield GaugeMetricFamily("kodosumi_timer_launches_in_flight",
                                "Launch requests sent and not answered yet",
                                value=timer["in_flight"])
        yield GaugeMetricFamily("kodosumi_timer_executions_running",
                                "Scheduled executions launched and not ended",
                                value=timer["running"])
        runs = CounterMetricFamily(
            "kodosumi_timer_runs", "Runs the timer recorded with each status since it started "
            "(a run counts once per status it reaches)", labels=["status"])
        for status, n in sorted(timer["runs"].items()):
            runs.add_metric([status], n)
        yield runs
        yield _histogram("kodosumi_timer_fire_lateness_seconds",
                         "Launch request sent minus the slot (plus its jitter offset), "
                         "timer-triggered slots", timer["lateness_seconds"])
        yield _histogram("kodosumi_timer_launch_answer_seconds",
                         "How long kodosumi's panel took to answer a launch request",
                         timer["answer_seconds"])

    def _store(self) -> Iterable[Metric]:
        store_up = self.facts["store_up"]
        yield GaugeMetricFamily("kodosumi_timer_store_up", "1 when the panel could read "
                                "the schedule store for this scrape, else 0",
                                value=int(store_up))
        if not store_up:
            return
        kept = GaugeMetricFamily("kodosumi_timer_runs_kept", "Runs in the store's history "
                                 "now, by status (pruning lowers it)", labels=["status"])
        for status, n in sorted(self.facts["runs_kept"].items()):
            kept.add_metric([status], n)
        yield kept
        yield GaugeMetricFamily("kodosumi_timer_due_backlog", "Active schedules due now that "
                                "no timer has claimed yet", value=self.facts["backlog"])
        yield GaugeMetricFamily("kodosumi_timer_due_backlog_oldest_seconds",
                                "How long the oldest of them has been due",
                                value=self.facts["backlog_oldest_seconds"])


def _histogram(name: str, doc: str, data: dict[str, Any]) -> HistogramMetricFamily:
    buckets: list[tuple[str, float]] = []
    cumulative = 0
    for bound, count in zip([*data["bounds"], float("inf")], data["counts"], strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=data["sum"])


def render(facts: dict[str, Any]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FactsCollector(facts))
    return generate_latest(registry)


def authorized(header: str | None, token: str | None) -> bool:
    """Whether a request may read the metrics: always without a token set, else only
    with ``Authorization: Bearer <token>`` (compared in constant time)."""
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


async def gather(request: Request[Any, Any, Any]) -> dict[str, Any]:
    services = services_from(request.app.state)
    timer_meta: TimerMeta = request.app.state.get(TIMER_META_KEY, ray_timer_meta)
    now = services.clock()
    meta = await timer_meta()
    store: dict[str, Any] | None = None
    try:
        store = await store_figures(services.store, now)
    except Exception:  # the timer's figures are still worth a scrape
        log.warning("metrics: the schedule store could not be read", exc_info=True)
    return facts(meta, store, now, __version__)


@get("/metrics", opt={"no_auth": True}, include_in_schema=False)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The timer's figures in the Prometheus text format (issue 12)."""
    token = services_from(request.app.state).settings.TIMER_METRICS_TOKEN
    if not authorized(request.headers.get("authorization"), token):
        return Response(b"metrics need Authorization: Bearer <KODO_TIMER_METRICS_TOKEN>\n",
                        status_code=401, media_type="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return Response(render(await gather(request)), media_type=CONTENT_TYPE)
