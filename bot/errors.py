"""One tree of the errors the bot raises on purpose; each message is one line a person can act on.

    ChatOpsError
      UsageError    bad input from a person: what is wrong and what to type instead
      ConfigError   a configuration problem, phrased for the person starting the bot (exit 2)
      TemporaryError  durable work that failed for now (a backend down): retried with backoff
      PermanentError  durable work that can never succeed: given up at once, logged
"""


class ChatOpsError(Exception):
    """An error the bot raised on purpose, with a message meant for a person."""


class UsageError(ChatOpsError):
    """Bad input from a person: the message says what is wrong and what to type instead."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


class ConfigError(ChatOpsError):
    """A configuration problem, phrased for the person starting the bot."""


class TemporaryError(ChatOpsError):
    """Work that failed for now; the worker retries it (after `delay` seconds when given)."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(ChatOpsError):
    """Work that can never succeed as it is; the worker gives it up at once and logs why."""
