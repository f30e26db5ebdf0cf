"""Every reason text the timer writes into a run's history, in one place."""

MISSED = "the timer was not running at this time"
MISSED_UNCOUNTED = (MISSED + "; so were the later slots up to the last one recorded (not "
                    "recorded one by one)")
MISSED_LATE = ("due to be sent {late:.0f} s after its slot, beyond catchup_window "
               "({window} s; catchup=skip)")
OVERLAP = "the previous execution was still running (overlap=skip)"
BUFFERED = "waits for the running execution to end (overlap=buffer_one)"
BUFFER_FULL = "the previous execution was still running and a slot already waits for it " \
    "(overlap=buffer_one)"
REPLACED = "ended through kodosumi to start the slot of {slot} (overlap=replace)"
PAUSED = "the schedule was paused before this slot"
CHANGED = "the schedule was changed before this slot; the change applies from the next slot"
OWNER_INACTIVE = "owner inactive"
OWNER_MISSING = "owner no longer exists"
PAUSED_BY_TIMER = "paused by the timer: {why}"
FAILED_IN_ROW = "the last {count} runs failed in a row (pause_after_failures)"
TIMED_OUT = "still running after its timeout of {seconds} s; ended through kodosumi"
BAD_ROW = "the stored schedule cannot be run: {why}"
CANNOT_PLAN = "its next run cannot be computed ({why})"
FOLLOW_LOST = "kodosumi does not know this execution"
FOLLOW_NO_STATUS = ("kodosumi answered the launch with this execution's id but has given no "
                    "status for it in ten minutes, while it answers other requests; whether "
                    "the agent ran cannot be told")
TIMER_ERROR = "timer error while launching: {error}"
RECONCILED = "kodosumi answered {answer}; found its execution: {how}"
NOT_FOUND_RETRIED = "kodosumi answered {answer} and shows no execution for this run; sent again"
NOT_STARTED = "{answer}; kodosumi shows no execution of it"
IN_DOUBT = "{answer}; whether kodosumi started it cannot be told: {why}"
TAKEN_OVER = "taken over from timer {timer} whose claim expired"


def owner_reason(state: str) -> str | None:
    """Why an owner in ``state`` (active | inactive | missing) cannot launch, or None."""
    if state == "active":
        return None
    return OWNER_INACTIVE if state == "inactive" else OWNER_MISSING
