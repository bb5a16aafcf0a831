"""Run diagnostics with timeouts and collect their Results into a Report.

A diagnostic that fails, hangs or raises becomes an error Result for itself alone,
saying what failed and where; it never escapes to Slack or kills the rest of a report.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

from bot.clients import BackendLocation
from bot.errors import ChatOpsError
from diagnostics.http_api import BackendError
from diagnostics.result import Result, Status

log = logging.getLogger(__name__)


@dataclass
class Report:
    title: str
    results: list[Result]
    elapsed: float = 0.0

    @property
    def status(self) -> Status:
        return Status.worst([r.status for r in self.results])


DiagnosticFactory = Callable[[], Awaitable[Result]]


async def run_diagnostic(
    title: str,
    factory: DiagnosticFactory,
    backend: BackendLocation,
    timeout: float,
    on_error: Callable[[str], None] | None = None,
) -> Result:
    """Run one diagnostic under a timeout; any failure becomes that diagnostic's error Result."""
    try:
        return await asyncio.wait_for(factory(), timeout)
    except asyncio.TimeoutError:
        message = f"{backend.name}: timed out after {timeout:g} s at {backend.location}"
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - the point is that nothing escapes
        log_failure(log, e, "diagnostic %r failed", title, bug_level=logging.WARNING)
        message = f"{backend.name}: {describe_exception(e)} at {backend.location}"
    if on_error is not None:
        on_error(backend.name)
    return Result.error(title, message)


def describe_exception(e: BaseException) -> str:
    """A one-line account of an error, without a traceback."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    name = type(e).__name__
    slack_error = _slack_error(e)
    if slack_error:
        return f"Slack answered {slack_error}"
    if isinstance(e, TimeoutError) and not text:  # no answer in time: not a connection failure
        return "timed out"
    if isinstance(e, (ConnectionError, OSError)) and not text:
        return f"cannot connect ({name})"
    return f"{name}: {text}" if text else name




# Libraries whose exceptions say a backend failed (no connection, an HTTP or API error), not that
# the bot has a bug: their types, or a base of them, are defined in these packages.
BACKEND_LIBRARIES = frozenset({
    "aiohttp", "requests", "urllib3", "botocore", "boto3", "slack_sdk", "psycopg", "elasticsearch",
    "elastic_transport", "kubernetes", "kubernetes_asyncio", "prometheus_api_client", "redis",
})


def is_routine(e: BaseException) -> bool:
    """A backend failing as backends do: a timeout, a refused connection, an HTTP or API error."""
    if isinstance(e, (TimeoutError, asyncio.TimeoutError, OSError, BackendError, ChatOpsError)):
        return True
    return any(c.__module__.partition(".")[0] in BACKEND_LIBRARIES for c in type(e).__mro__)


def log_failure(logger: logging.Logger, e: BaseException, message: str, *args: object,
                bug_level: int = logging.ERROR) -> None:
    """A routine backend failure is one WARNING line (`message: the error`), its traceback at DEBUG:
    a storm against a dead backend must stay readable. Anything else is a bug: the traceback at
    `bug_level`."""
    if is_routine(e):
        logger.warning(message + ": %s", *args, describe_exception(e))
        logger.debug(message + " (traceback)", *args, exc_info=e)
    else:
        logger.log(bug_level, message, *args, exc_info=e)


def _slack_error(e: BaseException) -> str:
    """The `error` field of a Slack Web API answer (slack_sdk's SlackApiError), if any; its HTTP
    status when Slack failed (5xx, 429: its `error` then says no more) or answered with no JSON
    (a 500's HTML page)."""
    response = getattr(e, "response", None)
    data = getattr(response, "data", None)
    status = getattr(response, "status_code", None)
    failed = isinstance(status, int) and (status >= 500 or status == 429)
    if not failed and isinstance(data, dict) and isinstance(data.get("error"), str):
        return data["error"]
    if response is not None and isinstance(status, int) and status >= 400:
        return f"HTTP {status}"
    return ""
