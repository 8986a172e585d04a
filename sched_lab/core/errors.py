"""The core's own (small) error tree. Inside the core a failed task is data, not an exception."""


class SchedulerMisuse(ValueError):
    """Raised when a driver misuses the scheduler: a duplicate task id or engine, an unknown event."""
