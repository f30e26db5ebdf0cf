"""The statuses a run (one slot of a schedule, or one "run now") passes through.

The path of a slot: ``queued`` (claimed by a timer, or requested with "run now";
waiting for its instant or for capacity) → ``launching`` (the request is being sent:
from here on it may have reached kodosumi) → ``launched`` → ``running`` → ``finished``
or ``error``. It may also end ``missed``, ``skipped``, ``rejected``, ``failed`` or, only
where kodosumi itself cannot tell whether it started, ``unknown``.
"""

from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    LAUNCHING = "launching"
    LAUNCHED = "launched"
    RUNNING = "running"
    FINISHED = "finished"
    ERROR = "error"
    MISSED = "missed"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    FAILED = "failed"
    UNKNOWN = "unknown"
    TIMED_OUT = "timed_out"  # ran longer than its schedule's timeout; ended through kodosumi
    BUFFERED = "buffered"  # waits for the running execution to end (overlap=buffer_one)
    REPLACED = "replaced"  # ended through kodosumi for the next slot (overlap=replace)


# an execution kodosumi knows of and that has not ended
ACTIVE = (RunStatus.LAUNCHED, RunStatus.RUNNING)
# not ended yet, whether or not it reached kodosumi (overlap=skip waits for these)
PENDING = (RunStatus.QUEUED, RunStatus.LAUNCHING, *ACTIVE)
# ended failing: counted in a row for the schedule's pause_after_failures
FAILING = (RunStatus.ERROR, RunStatus.FAILED, RunStatus.REJECTED, RunStatus.TIMED_OUT)
# ended: nothing more will happen to them (history may be pruned)
ENDED = (RunStatus.FINISHED, RunStatus.ERROR, RunStatus.MISSED, RunStatus.SKIPPED,
         RunStatus.REJECTED, RunStatus.FAILED, RunStatus.UNKNOWN, RunStatus.TIMED_OUT,
         RunStatus.REPLACED)
# ended without an execution, at the moment they were recorded
ENDED_UNLAUNCHED = (RunStatus.MISSED, RunStatus.SKIPPED, RunStatus.FAILED,
                    RunStatus.REJECTED)
