"""Fixtures that start real servers (or loopback fakes) on free 127.0.0.1 ports.

    prometheus_factory (session)  start(scrape_configs=, rule_files=, scrape_interval=, evaluation_interval=,
                                  alertmanager_url=) -> PrometheusServer; use it as a context manager to
                                  stop it early, otherwise it lives until the end of the session
    prometheus                    PrometheusServer with an empty config
    metrics_exporter              MetricsExporter: /metrics whose series the test sets
    alertmanager_factory (session) start(config_yaml=NULL_CONFIG) -> AlertmanagerServer (same lifetime rule)
    alertmanager                  AlertmanagerServer routing everything to a null receiver
    moto_server (session)         MotoServer (.url, .env, .reset())
    aws_env                       moto_server, reset, with its AWS_* variables set in os.environ
    redis_server                  RedisServer (.url, .port, .command())
    postgres_server (session)     PostgresServer (.dsn, .port, .psql()) with database `app`
                                  and pg_stat_statements
    fake_elasticsearch            FakeElasticsearch (.url, .add_docs(), .set_health(), .fail_with(), .delay())
    failing_server                (BackgroundServer, behaviour): answers every request with behaviour's
                                  "status" (503) and "body" ("overloaded, try later") after "delay" s (0)

A missing binary skips the test, or fails it when CI=true (tests/servers/missing.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from aiohttp import web

from tests.servers.alertmanager import NULL_CONFIG, AlertmanagerServer, start_alertmanager
from tests.servers.aws import MotoServer, start_moto
from tests.servers.background import BackgroundServer
from tests.servers.elasticsearch import FakeElasticsearch
from tests.servers.metrics_exporter import MetricsExporter
from tests.servers.missing import INSTALL_HINT, require_binary, server_missing
from tests.servers.postgres import PostgresServer, find_bin_dir, start_postgres, system_user_for_root
from tests.servers.prometheus import PrometheusConfig, PrometheusServer, start_prometheus
from tests.servers.redis import RedisServer, start_redis


class Stoppable(Protocol):
    def stop(self) -> None: ...


class StartPrometheus(Protocol):
    def __call__(
        self,
        scrape_configs: list[dict[str, Any]] | None = None,
        rule_files: dict[str, str] | None = None,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        alertmanager_url: str | None = None,
    ) -> PrometheusServer: ...


@pytest.fixture(scope="session")
def _session_servers() -> Iterator[list[Stoppable]]:
    """Servers started by the session-scoped factories; whatever is still running stops here."""
    started: list[Stoppable] = []
    yield started
    for server in reversed(started):
        server.stop()  # idempotent: a server a test already stopped is just reaped again


# -- Prometheus ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def prometheus_factory(
    tmp_path_factory: pytest.TempPathFactory, _session_servers: list[Stoppable]
) -> StartPrometheus:
    binary = require_binary("prometheus", package="prometheus")

    def start(
        scrape_configs: list[dict[str, Any]] | None = None,
        rule_files: dict[str, str] | None = None,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        alertmanager_url: str | None = None,
    ) -> PrometheusServer:
        config = PrometheusConfig(
            scrape_configs or [], rule_files or {}, scrape_interval, evaluation_interval, alertmanager_url
        )
        server = start_prometheus(binary, tmp_path_factory.mktemp("prometheus"), config)
        _session_servers.append(server)
        return server

    return start


@pytest.fixture
def prometheus(prometheus_factory: StartPrometheus) -> Iterator[PrometheusServer]:
    with prometheus_factory() as server:
        yield server


# -- metrics exporter ---------------------------------------------------------------------------
@pytest.fixture
def metrics_exporter() -> Iterator[MetricsExporter]:
    exporter = MetricsExporter()
    exporter.start()
    yield exporter
    exporter.stop()


# -- Alertmanager -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def alertmanager_factory(
    tmp_path_factory: pytest.TempPathFactory, _session_servers: list[Stoppable]
) -> Callable[..., AlertmanagerServer]:
    # Debian names the binary prometheus-alertmanager; upstream tarballs call it alertmanager.
    binary = require_binary("prometheus-alertmanager", "alertmanager", package="prometheus-alertmanager")

    def start(config_yaml: str = NULL_CONFIG) -> AlertmanagerServer:
        server = start_alertmanager(binary, tmp_path_factory.mktemp("alertmanager"), config_yaml)
        _session_servers.append(server)
        return server

    return start


@pytest.fixture
def alertmanager(alertmanager_factory: Callable[..., AlertmanagerServer]) -> Iterator[AlertmanagerServer]:
    with alertmanager_factory() as server:
        yield server


# -- AWS (moto) ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    try:
        server = start_moto()
    except ImportError as error:
        server_missing(f"moto server mode unavailable ({error}): pip install -e '.[test]'")
    yield server
    server.stop()


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """A clean moto, and os.environ pointing boto3 at it (credentials, region, endpoint)."""
    moto_server.reset()
    # A developer's own profile or session token must never leak into a test (or reach real AWS).
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name, value in moto_server.env.items():
        monkeypatch.setenv(name, value)
    return moto_server


# -- Redis --------------------------------------------------------------------------------------
@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    binary = require_binary("redis-server", package="redis-server")
    server = start_redis(binary, tmp_path)
    yield server
    server.stop()


# -- PostgreSQL ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_bin_dir()
    if bin_dir is None or not os.access(bin_dir / "postgres", os.X_OK):
        server_missing(f"PostgreSQL initdb/postgres not found: {INSTALL_HINT} (Debian package postgresql-15)")
    try:
        run_as = system_user_for_root()
    except KeyError:
        server_missing(f"running as root needs the 'postgres' system user: {INSTALL_HINT} (postgresql-15)")
    # Not under pytest's tmp dir: that is private to root (0700), and as root the server runs
    # as `postgres`, which must own its data directory.
    workdir = Path(tempfile.mkdtemp(prefix="pytest-postgres-"))
    try:
        server = start_postgres(bin_dir, workdir, run_as)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


# -- Elasticsearch (fake) -----------------------------------------------------------------------
@pytest.fixture
def fake_elasticsearch() -> Iterator[FakeElasticsearch]:
    es = FakeElasticsearch()
    es.start()
    yield es
    es.stop()


# -- an unwell HTTP server ----------------------------------------------------------------------
@pytest.fixture
def failing_server() -> Iterator[tuple[BackgroundServer, dict[str, Any]]]:
    behaviour: dict[str, Any] = {"status": 503, "body": "overloaded, try later", "delay": 0.0}

    async def handle(request: web.Request) -> web.Response:
        await asyncio.sleep(behaviour["delay"])
        return web.Response(status=behaviour["status"], text=behaviour["body"])

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = BackgroundServer(app)
    server.start()
    yield server, behaviour
    server.stop()
