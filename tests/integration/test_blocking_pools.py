"""Blocking clients (boto3, prometheus-api-client, matplotlib) each have a thread pool of their own:
a blackholed AWS endpoint ties up the AWS threads, never Prometheus'. And one boto3 call holds its
thread no longer than about diagnostic_timeout (one attempt, not retried).

The blackhole is a listening socket that never accepts: the TCP handshake completes (the kernel
queues the connection) and the request is sent, but no answer ever comes, as with a firewall
that drops replies. Prometheus is a real one."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest
from botocore.exceptions import ReadTimeoutError

from bot.all_sections import Sections
from bot.clients import Clients
from bot.commands.execute import execute
from bot.commands.model import Context
from bot.commands.table import build_table
from bot.settings import Settings
from diagnostics.result import Status
from tests.servers.aws import REGION

pytestmark = pytest.mark.integration


@pytest.fixture
def blackhole() -> Iterator[str]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


async def test_a_blackholed_aws_endpoint_does_not_time_out_prometheus_queries(aws_env, blackhole, prometheus):
    settings = Settings(aws_region=REGION, aws_endpoint_url=blackhole, prometheus_url=prometheus.url,
                        diagnostic_timeout=2)
    clients = await Clients.build(settings)
    table = build_table(Sections())
    try:
        ctx = Context(settings, clients)
        # More hanging AWS calls than the AWS pool has threads (distinct names: none coalesce).
        hanging = [asyncio.create_task(execute(table.parse(f"rds db-{i}", "default"), ctx))
                   for i in range(12)]
        await asyncio.sleep(0.3)  # the AWS calls hold their threads now
        started = time.monotonic()
        report = await execute(table.parse("promql 1 + 1", "default"), ctx)
        took = time.monotonic() - started
        (result,) = report.results
        assert (result.status, result.summary) == (Status.OK, "scalar: 2"), result.summary
        assert took < 1.0, took
        aws_reports = await asyncio.gather(*hanging)
        assert {r.status for r in aws_reports} == {Status.ERROR}
    finally:
        await clients.close()


async def test_one_boto3_call_against_a_blackhole_gives_up_after_the_timeout_without_retrying(aws_env,
                                                                                              blackhole):
    settings = Settings(aws_region=REGION, aws_endpoint_url=blackhole, diagnostic_timeout=1)
    clients = await Clients.build(settings)
    try:
        rds = await clients.aws("rds")
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError):
            await clients.pool("aws").run(rds.describe_db_instances)
        took = time.monotonic() - started
    finally:
        await clients.close()
    # One attempt of the 1 s read timeout; the old config (3 attempts + backoff) held it 3 s or more.
    assert 0.9 < took < 1.6, took


async def test_each_blocking_backend_has_its_own_pool():
    clients = await Clients.build(Settings())
    try:
        aws, prometheus, charts = clients.pool("aws"), clients.pool("prometheus"), clients.pool("charts")
        assert len({id(aws), id(prometheus), id(charts)}) == 3
        assert clients.pool("aws") is aws  # built once
        with pytest.raises(KeyError):
            clients.pool("nosuch")
    finally:
        await clients.close()
