"""kodosumi-timer: scheduled agent executions for kodosumi."""

__version__ = "0.1.0"
