"""The timer: the service loop and the stages a slot passes through it.

planning (plan and claim) → pacing (queue and pace) → launching (check, send,
reconcile) → recording → following. See each module.
"""

from kodosumi_timer.clock import utcnow
from kodosumi_timer.timer.following import FOLLOW_AT_LEAST, poll_spacing
from kodosumi_timer.timer.loop import SystemSource, Timer, TimerConfig, TimerStats
from kodosumi_timer.timer.waking import LocalWaker, Waker

__all__ = ["FOLLOW_AT_LEAST", "LocalWaker", "SystemSource", "Timer", "TimerConfig",
           "TimerStats", "Waker", "poll_spacing", "utcnow"]
