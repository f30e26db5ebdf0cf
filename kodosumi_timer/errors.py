"""Domain errors, one class per failure; the API maps them to statuses in one place."""


class TimerError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, detail: str, field: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.field = field


class InvalidInput(TimerError):
    status = 422
    code = "invalid_input"


class NotFound(TimerError):
    status = 404
    code = "not_found"


class Conflict(TimerError):
    status = 409
    code = "conflict"


class Forbidden(TimerError):
    status = 403
    code = "forbidden"


class LimitExceeded(TimerError):
    status = 422
    code = "limit_exceeded"


class FlowUnavailable(TimerError):
    """The agent's app does not answer (its form cannot be read): try again later."""

    status = 503
    code = "flow_unavailable"
