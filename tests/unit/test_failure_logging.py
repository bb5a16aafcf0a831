"""Routine backend failures are one WARNING line each (the traceback at DEBUG); bugs keep theirs."""

from __future__ import annotations

import logging

import aiohttp
import requests

from bot.clients import BackendLocation
from bot.commands.report import run_diagnostic
from diagnostics.blocking import BlockingPool
from diagnostics.http_api import request

UNREACHABLE = "http://127.0.0.1:9"  # discard: the connection is refused
BACKEND = BackendLocation("Prometheus", UNREACHABLE)


def _records(caplog, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bot.commands.report" and r.levelno == level]


async def test_a_diagnostic_against_an_unreachable_backend_logs_one_warning_line_without_a_traceback(caplog):
    caplog.set_level(logging.DEBUG)

    async def query() -> None:
        async with aiohttp.ClientSession() as http:
            await request(http, f"{UNREACHABLE}/api/v1/query", backend="Prometheus", location=UNREACHABLE,
                          timeout=5)

    result = await run_diagnostic("error rate", query, BACKEND, timeout=5)
    assert result.status.name == "ERROR" and "127.0.0.1:9" in result.summary
    (warning,) = _records(caplog, logging.WARNING)
    assert warning.exc_info is None
    assert "diagnostic 'error rate' failed: " in warning.getMessage() and "\n" not in warning.getMessage()
    (debug,) = _records(caplog, logging.DEBUG)
    assert debug.exc_info is not None


async def test_a_blocking_client_refused_is_routine_too(caplog):
    caplog.set_level(logging.DEBUG)
    pool = BlockingPool(1, name="t")

    async def query() -> None:
        await pool.run(requests.get, f"{UNREACHABLE}/api/v1/query", timeout=5)

    await run_diagnostic("error rate", query, BACKEND, timeout=5)
    pool.close()
    (warning,) = _records(caplog, logging.WARNING)
    assert warning.exc_info is None and "ConnectionError" in warning.getMessage()


async def test_a_bug_in_a_diagnostic_keeps_its_traceback(caplog):
    caplog.set_level(logging.DEBUG)

    async def buggy() -> None:
        raise KeyError("labels")

    await run_diagnostic("error rate", buggy, BACKEND, timeout=5)
    (warning,) = _records(caplog, logging.WARNING)
    assert warning.exc_info is not None and warning.exc_info[0] is KeyError
