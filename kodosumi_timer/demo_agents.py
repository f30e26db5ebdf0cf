"""Demo agents for kodosumi-timer: four small kodosumi flows on Ray Serve.

Each agent is its own Serve application with its own route prefix:

- ``quick`` (``/quick``): a form with text, number, select, checkbox and date
  inputs; validates them and finishes in about a second with a Markdown result
  that echoes the inputs.
- ``slow`` (``/slow``): runs for ``seconds`` seconds (default 20) and reports its
  progress; used to test overlapping executions.
- ``failing`` (``/failing``): always raises inside the execution, so kodosumi
  records the status ``error``.
- ``heartbeat`` (``/heartbeat``): says it is alive in about a second, and declares
  its own default system schedule (every minute, as the timer user) through
  ``openapi_extra={"x-kodosumi-schedule": {...}}``.

The module ships with the package, so that ``koco-timer demo`` works from a plain
install: Ray's workers import it like any installed module, with the Serve import
paths ``kodosumi_timer.demo_agents:quick`` (``:slow``, ``:failing``, ``:heartbeat``).
Nothing else in the package imports it (it pulls in Ray Serve and FastAPI).
"""

import asyncio
import json
import time
from datetime import date
from typing import Any

from fastapi import Request
from kodosumi.core import InputsError, Launch, ServeAPI, Tracer, response
from kodosumi.core import forms as F
from ray import serve

AUTHOR = "kodosumi-timer demo"
ORGANIZATION = "kodosumi-timer"
VERSION = "1.0.0"
TAGS = ["demo", "kodosumi-timer"]

COLOURS = {"red": "Red", "green": "Green", "blue": "Blue"}
SLOW_DEFAULT_SECONDS = 20
SLOW_MAX_SECONDS = 3600
FAILURE_MESSAGE = "demo agent failing: this agent always fails"

# The agents' HTTP endpoints only validate and launch; the work runs in
# kodosumi's Runner actors. A replica therefore reserves a tenth of a CPU, not
# Serve's default of one, so the Runner actors always find a CPU to be placed on.
DEPLOYMENT_OPTIONS: dict[str, Any] = {"ray_actor_options": {"num_cpus": 0.1}}


def _as_number(value: Any) -> float | None:
    """A form number arrives as a JSON number or as a string from the browser."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------
# quick: several input kinds, validated, done in about a second
# ---------------------------------------------------------------------------

quick_app = ServeAPI()

quick_model = F.Model(
    F.Markdown(
        "# Quick demo agent\n"
        "Echoes its inputs after about a second. "
        "Use it to try schedules with every kind of input."
    ),
    F.Errors(),
    F.InputText(label="Message", name="message", required=True,
                placeholder="What should the agent echo?"),
    F.InputNumber(label="Repeat", name="repeat", value="1",
                  min_value=1, max_value=10, step=1),
    F.Select(label="Colour", name="colour", value="green",
             option=[F.InputOption(label=label, name=name)
                     for name, label in COLOURS.items()]),
    F.Checkbox(label="Shout", name="shout", option="Echo in upper case",
               value=False),
    F.InputDate(label="Reference date", name="day", required=False),
    F.Submit("Run"),
    F.Cancel("Cancel"),
)


def validate_quick(inputs: dict[str, Any]) -> dict[str, Any]:
    """Check the quick agent's inputs; return them cleaned or raise InputsError."""
    error = InputsError()
    message = str(inputs.get("message") or "").strip()
    if not message:
        error.add(message="Please enter a message.")
    raw_repeat = inputs.get("repeat")
    repeat = 1.0 if raw_repeat in (None, "") else _as_number(raw_repeat)
    if repeat is None or not repeat.is_integer() or not 1 <= repeat <= 10:
        error.add(repeat="Repeat must be a whole number from 1 to 10.")
    colour = inputs.get("colour") or "green"
    if colour not in COLOURS:
        error.add(colour=f"Colour must be one of {', '.join(COLOURS)}.")
    day = inputs.get("day") or None
    if day is not None:
        try:
            date.fromisoformat(str(day))
        except ValueError:
            error.add(day="The reference date must look like 2025-01-31.")
    if error.has_errors() or repeat is None:
        raise error
    return {
        "message": message,
        "repeat": int(repeat),
        "colour": colour,
        "shout": bool(inputs.get("shout")),
        "day": day,
    }


async def run_quick(inputs: dict[str, Any], tracer: Tracer) -> Any:
    """Entry point of the quick agent: echo the inputs after about a second."""
    started = time.time()
    await tracer.markdown(f"Echoing *{inputs['message']}* ...")
    await asyncio.sleep(1)
    text = inputs["message"].upper() if inputs["shout"] else inputs["message"]
    lines = "\n".join(f"{n}. {text}" for n in range(1, inputs["repeat"] + 1))
    return response.Markdown(
        "# Quick demo agent: done",
        lines,
        "",
        "| input | value |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in inputs.items()],
        "",
        f"Finished in {time.time() - started:.1f} s.",
        "",
        "```json",
        json.dumps({"inputs": inputs}, sort_keys=True),
        "```",
    )


@quick_app.enter(
    path="/",
    model=quick_model,
    summary="Quick demo agent",
    description="Echoes a message with options after about a second. "
                "Takes text, number, select, checkbox and date inputs.",
    tags=TAGS,
    version=VERSION,
    author=AUTHOR,
    organization=ORGANIZATION,
)
async def enter_quick(request: Request, inputs: dict[str, Any]) -> Any:
    return Launch(request, run_quick, inputs=validate_quick(inputs))


@serve.deployment(**DEPLOYMENT_OPTIONS)
@serve.ingress(quick_app)
class QuickAgent:
    pass


# ---------------------------------------------------------------------------
# slow: runs for a while, for overlap tests
# ---------------------------------------------------------------------------

slow_app = ServeAPI()

slow_model = F.Model(
    F.Markdown(
        "# Slow demo agent\n"
        "Works for the given number of seconds and reports its progress. "
        "Use it to see what a schedule does when its previous run is still running."
    ),
    F.Errors(),
    F.InputNumber(label="Seconds", name="seconds", value=str(SLOW_DEFAULT_SECONDS),
                  min_value=1, max_value=SLOW_MAX_SECONDS, step=1),
    F.Submit("Run"),
    F.Cancel("Cancel"),
)


def validate_slow(inputs: dict[str, Any]) -> dict[str, Any]:
    seconds = _as_number(inputs.get("seconds"))
    if seconds is None:
        seconds = SLOW_DEFAULT_SECONDS
    if not 0 < seconds <= SLOW_MAX_SECONDS:
        raise InputsError(
            seconds=f"Seconds must be more than 0 and at most {SLOW_MAX_SECONDS}.")
    return {"seconds": seconds}


async def run_slow(inputs: dict[str, Any], tracer: Tracer) -> Any:
    """Entry point of the slow agent: work for ``seconds`` seconds."""
    seconds = inputs["seconds"]
    started = time.monotonic()
    deadline = started + seconds
    reported = 0
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(1.0, left))
        elapsed = int(time.monotonic() - started)
        if elapsed // 5 > reported // 5:
            reported = elapsed
            await tracer.markdown(f"{elapsed} of {seconds:g} seconds done.")
    return response.Markdown(
        "# Slow demo agent: done",
        f"Worked for {time.monotonic() - started:.1f} seconds.",
    )


@slow_app.enter(
    path="/",
    model=slow_model,
    summary="Slow demo agent",
    description="Works for a configurable number of seconds (default 20) "
                "and reports its progress.",
    tags=TAGS,
    version=VERSION,
    author=AUTHOR,
    organization=ORGANIZATION,
)
async def enter_slow(request: Request, inputs: dict[str, Any]) -> Any:
    return Launch(request, run_slow, inputs=validate_slow(inputs))


@serve.deployment(**DEPLOYMENT_OPTIONS)
@serve.ingress(slow_app)
class SlowAgent:
    pass


# ---------------------------------------------------------------------------
# failing: always fails inside the execution
# ---------------------------------------------------------------------------

failing_app = ServeAPI()

failing_model = F.Model(
    F.Markdown(
        "# Failing demo agent\n"
        "Accepts the launch and then always fails, so the execution ends "
        "with status *error*. Use it to see how failed runs are reported."
    ),
    F.Errors(),
    F.InputText(label="Note", name="note", required=False,
                placeholder="Optional, shown before the failure"),
    F.Submit("Run"),
    F.Cancel("Cancel"),
)


async def run_failing(inputs: dict[str, Any], tracer: Tracer) -> Any:
    """Entry point of the failing agent: raise after a short moment."""
    if inputs.get("note"):
        await tracer.markdown(f"Note: {inputs['note']}")
    await asyncio.sleep(0.5)
    raise RuntimeError(FAILURE_MESSAGE)


@failing_app.enter(
    path="/",
    model=failing_model,
    summary="Failing demo agent",
    description="Always fails during the execution with "
                f"RuntimeError: {FAILURE_MESSAGE}.",
    tags=TAGS,
    version=VERSION,
    author=AUTHOR,
    organization=ORGANIZATION,
)
async def enter_failing(request: Request, inputs: dict[str, Any]) -> Any:
    note = str(inputs.get("note") or "").strip()
    return Launch(request, run_failing, inputs={"note": note})


@serve.deployment(**DEPLOYMENT_OPTIONS)
@serve.ingress(failing_app)
class FailingAgent:
    pass


# ---------------------------------------------------------------------------
# heartbeat: declares its own default system schedule
# ---------------------------------------------------------------------------

heartbeat_app = ServeAPI()

HEARTBEAT_DEFAULT_NOTE = "all systems nominal"
# The flow's own default system schedule: kodosumi puts ``openapi_extra`` into the
# flow's OpenAPI operation, where the timer finds it through the panel's flow list.
# The timer runs it as its ``timer`` user; an entry for this flow in the schedules
# file (KODO_TIMER_SCHEDULES) overrides it.
HEARTBEAT_SCHEDULE: dict[str, Any] = {
    "cron": "* * * * *",
    "timezone": "UTC",
    "inputs": {"note": HEARTBEAT_DEFAULT_NOTE},
    "enabled": True,
    "title": "Heartbeat (flow default)",
}

heartbeat_model = F.Model(
    F.Markdown(
        "# Heartbeat demo agent\n"
        "Says it is alive, in about a second. It declares its own system schedule "
        "(every minute, run as the timer user) with `x-kodosumi-schedule`."
    ),
    F.Errors(),
    F.InputText(label="Note", name="note", required=False, value=HEARTBEAT_DEFAULT_NOTE),
    F.Submit("Run"),
    F.Cancel("Cancel"),
)


async def run_heartbeat(inputs: dict[str, Any], tracer: Tracer) -> Any:
    """Entry point of the heartbeat agent: one quiet second, then a one-line result."""
    await asyncio.sleep(1)
    return response.Markdown(
        "# Heartbeat demo agent: alive",
        f"Note: {inputs['note']}",
        "",
        "```json",
        json.dumps({"inputs": inputs}, sort_keys=True),
        "```",
    )


@heartbeat_app.enter(
    path="/",
    model=heartbeat_model,
    summary="Heartbeat demo agent",
    description="Says it is alive in about a second. Declares its own default "
                "system schedule: every minute, as the timer user.",
    tags=TAGS,
    version=VERSION,
    author=AUTHOR,
    organization=ORGANIZATION,
    openapi_extra={"x-kodosumi-schedule": HEARTBEAT_SCHEDULE},
)
async def enter_heartbeat(request: Request, inputs: dict[str, Any]) -> Any:
    note = str(inputs.get("note") or "").strip() or HEARTBEAT_DEFAULT_NOTE
    return Launch(request, run_heartbeat, inputs={"note": note})


@serve.deployment(**DEPLOYMENT_OPTIONS)
@serve.ingress(heartbeat_app)
class HeartbeatAgent:
    pass


# Serve applications, imported by Ray Serve as ``kodosumi_timer.demo_agents:<name>``.
quick = QuickAgent.bind()  # type: ignore[attr-defined]
slow = SlowAgent.bind()  # type: ignore[attr-defined]
failing = FailingAgent.bind()  # type: ignore[attr-defined]
heartbeat = HeartbeatAgent.bind()  # type: ignore[attr-defined]
