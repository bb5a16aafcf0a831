"""Each backend client, built once from Settings and passed in; closed once at the end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.settings import Settings, database_location, safe_url
from diagnostics.blocking import BlockingPool
from diagnostics.cache import QueryCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendLocation:
    """Where a diagnostic's data comes from, for error messages a person can act on."""

    name: str  # "Kubernetes"
    location: str  # "https://10.0.0.1:6443"; never with credentials


# What a user sets to enable each backend; used by "not configured" answers and /ops help.
BACKEND_SETTINGS: dict[str, tuple[str, str]] = {
    "kubernetes": ("Kubernetes", "KUBECONFIG or run in-cluster"),
    "prometheus": ("Prometheus", "PROMETHEUS_URL"),
    "alertmanager": ("Alertmanager", "ALERTMANAGER_URL"),
    "elasticsearch": ("Elasticsearch", "ELASTICSEARCH_URL"),
    "aws": ("AWS", "AWS_REGION"),
    "database": ("PostgreSQL", "DATABASE_URL"),
    "grafana": ("Grafana", "GRAFANA_URL"),
    "http": ("HTTP", "dependencies in chatops.yaml"),
}


# A server waits at most this long at start for Clients.warm_up (normally about 2 s), then serves anyway.
WARM_UP_SECONDS = 30.0

# Threads per blocking backend (Clients.pool). Charts are CPU-bound: more threads only queue on the GIL.
POOL_WORKERS: dict[str, int] = {"aws": 8, "prometheus": 8, "charts": 2}


class ClientSetupError(Exception):
    """A configured backend whose client could not be built (bad kubeconfig, ...)."""


@dataclass
class Clients:
    settings: Settings
    http: aiohttp.ClientSession
    # Identical backend queries in flight together share one call; answers live a few seconds.
    cache: QueryCache
    kubernetes: Any = None  # kubernetes.aio.client.ApiClient
    elasticsearch: Any = None  # elasticsearch.AsyncElasticsearch
    # prometheus_api_client.PrometheusConnect; it blocks, so call it through self.pool("prometheus").run.
    prometheus: Any = None
    # Blocking clients run off the event loop, each backend in a pool of its own (see pool()).
    _pools: dict[str, BlockingPool] = field(default_factory=dict)
    _aws_clients: dict[str, Any] = field(default_factory=dict)
    _aws_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Loading the Kubernetes client's classes in a thread (serving only: warm_up); Kubernetes calls wait for it.
    _kubernetes_loading: asyncio.Future[None] | None = None

    @classmethod
    async def build(cls, settings: Settings) -> "Clients":
        # Short connect timeout: a backend that doesn't answer a TCP handshake in 5 s is down.
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.diagnostic_timeout, connect=5))
        clients = cls(settings=settings, http=http, cache=QueryCache(ttl=settings.cache_ttl))
        try:
            if settings.kubernetes_configured:
                from diagnostics.kubernetes import KubernetesConfigError, make_api_client

                try:
                    clients.kubernetes = await make_api_client(
                        settings.kubeconfig or None, in_cluster=settings.kubernetes_in_cluster
                    )
                except KubernetesConfigError as e:
                    raise ClientSetupError(str(e)) from None
            if settings.elasticsearch_url:
                clients.elasticsearch = _elasticsearch(settings)
            if settings.prometheus_url:
                from prometheus_api_client import PrometheusConnect
                from urllib3.util.retry import Retry

                clients.prometheus = PrometheusConnect(
                    # No retries: the library's default backs off ~6 s on a refused connection or
                    # a 503, which would turn "connection refused" into "timed out after 5 s".
                    settings.prometheus_url, disable_ssl=False, timeout=settings.diagnostic_timeout,
                    retry=Retry(total=0),
                )
        except BaseException:
            await clients.close()
            raise
        return clients

    def preload(self) -> None:
        """Start loading, in a daemon thread, what the clients would otherwise load lazily on the
        event loop (the Kubernetes API and model classes: CoreV1Api alone takes 0.6 s); Kubernetes
        calls wait for it (kubernetes_ready) instead of stalling the loop. warm_up awaits it."""
        if self.kubernetes is not None and self._kubernetes_loading is None:
            from diagnostics.kubernetes.client import load_models

            self._kubernetes_loading = _in_daemon_thread(load_models)

    async def warm_up(self, timeout: float | None = None) -> float:
        """For a long-running server, before it takes work: load what preload loads and wait for
        it (about 2 s, once per process), so that no loading thread competes with the loop for the
        GIL once commands come in, and the first Kubernetes command waits for nothing. Bounded:
        past `timeout`, or if loading fails, the server goes on (the classes then load as they
        are needed; `timeout` None: WARM_UP_SECONDS). Returns the seconds it took."""
        timeout = WARM_UP_SECONDS if timeout is None else timeout
        started = time.monotonic()
        self.preload()
        loading = self._kubernetes_loading
        if loading is not None and not loading.done():
            try:
                await asyncio.wait_for(asyncio.shield(loading), timeout)
            except TimeoutError:
                log.warning("warm-up: the Kubernetes client's classes still loading after %g s; serving anyway "
                            "(Kubernetes checks wait for them)", timeout)
            except Exception as e:  # noqa: BLE001 - a failed warm-up costs speed, never the bot
                log.warning("warm-up: loading the Kubernetes client's classes failed (%s: %s); they load as "
                            "needed", type(e).__name__, e)
                self._kubernetes_loading = None
        return time.monotonic() - started

    async def kubernetes_ready(self) -> None:
        """Wait until the Kubernetes client's classes are loaded (at once when they are, or when
        nothing is loading them: the terminal loads them as it goes)."""
        if self._kubernetes_loading is not None and not self._kubernetes_loading.done():
            await asyncio.shield(self._kubernetes_loading)

    def configured(self, backend: str) -> bool:
        s = self.settings
        return {
            "kubernetes": self.kubernetes is not None,
            "prometheus": bool(s.prometheus_url),
            "alertmanager": bool(s.alertmanager_url),
            "elasticsearch": self.elasticsearch is not None,
            "aws": s.aws_configured,
            "database": bool(s.database_url),
            "grafana": bool(s.grafana_url),
            "http": True,  # the runbook's default dependency list needs no configuration
        }[backend]

    def pool(self, backend: str) -> BlockingPool:
        """The thread pool for one blocking backend: "aws" (boto3), "prometheus"
        (prometheus-api-client) or "charts" (matplotlib).

        One pool per backend, so a backend that hangs ties up only its own threads: a
        blackholed AWS endpoint never makes Prometheus queries wait for a thread and time out.
        """
        if backend not in POOL_WORKERS:
            raise KeyError(f"no blocking pool for {backend!r} (known: {', '.join(POOL_WORKERS)})")
        if backend not in self._pools:
            self._pools[backend] = BlockingPool(POOL_WORKERS[backend], name=backend)
        return self._pools[backend]

    async def aws(self, service: str) -> Any:
        """A boto3 client for `service`, built once (off the loop: building one reads files).

        boto3 clients are thread-safe once built; call them through self.pool("aws").run.
        """
        async with self._aws_lock:
            if service not in self._aws_clients:
                self._aws_clients[service] = await self.pool("aws").run(_aws_client, self.settings, service)
            return self._aws_clients[service]

    def unconfigured(self) -> dict[str, str]:
        """backend -> what to set, for each backend the bot has no client for."""
        return {b: setting for b, (_, setting) in BACKEND_SETTINGS.items() if not self.configured(b)}

    def backend(self, backend: str) -> BackendLocation:
        """Name and location of a backend, for error messages (never with credentials)."""
        s = self.settings
        if backend == "kubernetes":
            host = self.kubernetes.configuration.host if self.kubernetes is not None else "(not configured)"
            return BackendLocation("Kubernetes", host)
        locations = {
            "prometheus": ("Prometheus", s.prometheus_url),
            "alertmanager": ("Alertmanager", s.alertmanager_url),
            "elasticsearch": ("Elasticsearch", s.elasticsearch_url),
            "aws": ("AWS", s.aws_endpoint_url or f"region {s.aws_region}"),
            "grafana": ("Grafana", s.grafana_url),
            "http": ("HTTP", "the configured dependencies"),
        }
        if backend == "database":  # only where it is: host:port/database
            return BackendLocation("PostgreSQL", database_location(s.database_url))
        name, location = locations[backend]
        return BackendLocation(name, safe_url(location))

    async def close(self) -> None:
        if self.kubernetes is not None:
            await self.kubernetes.close()
        if self.elasticsearch is not None:
            await self.elasticsearch.close()
        await self.http.close()
        for pool in self._pools.values():
            pool.close()


def _in_daemon_thread(work: Callable[[], object]) -> asyncio.Future[None]:
    """Run `work` in a daemon thread: unlike the loop's default executor, a stop does not wait
    for it (loading classes must not hold up a SIGTERM)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if not done.done():
            done.set_exception(error) if error is not None else done.set_result(None)

    def run() -> None:
        error: BaseException | None = None
        try:
            work()
        except BaseException as e:  # noqa: BLE001 - handed to whoever awaits the future
            error = e
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (a quick stop): nobody waits
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, name="load-kubernetes-classes", daemon=True).start()
    return done


def _aws_client(settings: Settings, service: str) -> Any:
    import boto3
    from botocore.config import Config

    # One attempt and a short connect: a blackholed endpoint holds the call's thread about
    # diagnostic_timeout. {"max_attempts": 2} meant 3 attempts, each waiting a full timeout.
    timeout = settings.diagnostic_timeout
    config = Config(connect_timeout=min(3.0, timeout), read_timeout=timeout,
                    retries={"total_max_attempts": 1, "mode": "standard"})
    session = boto3.session.Session(region_name=settings.aws_region)
    return session.client(service, config=config, endpoint_url=settings.aws_endpoint_url or None)


def _elasticsearch(settings: Settings) -> Any:
    from elasticsearch import AsyncElasticsearch

    kwargs: dict[str, Any] = {"request_timeout": settings.diagnostic_timeout, "max_retries": 0}
    if settings.elasticsearch_api_key:
        kwargs["api_key"] = settings.elasticsearch_api_key
    elif settings.elasticsearch_username:
        kwargs["basic_auth"] = (settings.elasticsearch_username, settings.elasticsearch_password)
    return AsyncElasticsearch(settings.elasticsearch_url, **kwargs)
