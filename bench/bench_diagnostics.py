"""Benchmark: concurrency of a report, and what coalescing saves.

    .venv/bin/python -m bench.bench_diagnostics

1. A report of several diagnostics against loopback backends that answer after 0.2, 0.4,
   0.6 and 0.8 s takes about as long as the slowest one, not the sum (2.0 s).
2. Fifty `pods` diagnostics at once for one namespace (an alert storm), against a loopback
   Kubernetes API that counts requests, with and without the query cache: the backend calls.

Numbers are printed; nothing is asserted (timed assertions flake; the numbers go in the
issue notes).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.checks.common import Check, run_checks  # noqa: E402
from bot.commands.model import Context  # noqa: E402
from bot.settings import Settings  # noqa: E402
from diagnostics.cache import QueryCache  # noqa: E402
from diagnostics.kubernetes import make_api_client, pod_status  # noqa: E402
from diagnostics.result import Result, Status  # noqa: E402

DELAYS = [0.2, 0.4, 0.6, 0.8]
ROUNDS = 5


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


class _StubClients:
    """Just enough of bot.clients.Clients for run_checks."""

    def configured(self, backend: str) -> bool:
        return True

    def backend(self, backend: str) -> Any:
        from bot.clients import BackendLocation

        return BackendLocation(backend, "loopback")


async def bench_concurrency() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.match_info["delay"]))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/{delay}", slow)
    runner, url = await _serve(app)
    ctx = Context(Settings(diagnostic_timeout=5), _StubClients())  # type: ignore[arg-type]
    async with aiohttp.ClientSession() as http:

        def check(delay: float) -> Check:
            async def run() -> Result:
                async with http.get(f"{url}/{delay}") as response:
                    await response.json()
                return Result(Status.OK, f"backend {delay}", "ok")

            return Check(f"backend {delay}", "http", run)

        walls = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            results = await run_checks(ctx, [check(d) for d in DELAYS])
            walls.append(time.perf_counter() - start)
            assert all(r.status is Status.OK for r in results)
    await runner.cleanup()
    print(f"report of {len(DELAYS)} diagnostics answering after {DELAYS} s")
    print(f"  slowest alone {max(DELAYS):.2f} s · sum {sum(DELAYS):.2f} s · "
          f"report wall median {statistics.median(walls):.3f} s (min {min(walls):.3f}, max {max(walls):.3f})")


def _kube_objects() -> tuple[dict[str, Any], dict[str, Any]]:
    from tests.plugins.kube import crashloop, oom_killed, running_ready

    pods = []
    for i, builder in enumerate([running_ready, crashloop, oom_killed] * 4):
        pod = builder(name=f"p{i}")
        pod["metadata"].update(name=f"checkout-abc-{i}", namespace="prod", labels={"app": "checkout"})
        pods.append(pod)
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "checkout", "namespace": "prod"},
        "spec": {"replicas": 12, "selector": {"matchLabels": {"app": "checkout"}},
                 "template": {"metadata": {"labels": {"app": "checkout"}},
                              "spec": {"containers": [{"name": "app", "image": "checkout:1"}]}}},
        "status": {"replicas": 12, "updatedReplicas": 12, "readyReplicas": 4, "availableReplicas": 4},
    }
    return deployment, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods}


async def bench_coalescing(storm: int = 50) -> None:
    deployment, pod_list = _kube_objects()
    calls: Counter[str] = Counter()

    async def api(request: web.Request) -> web.Response:
        calls[request.path] += 1
        await asyncio.sleep(0.05)  # an API server under load
        body = deployment if "/deployments/" in request.path else pod_list
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/{tail:.*}", api)
    runner, url = await _serve(app)
    kubeconfig = Path("/tmp/bench-kubeconfig")
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: b\n"
        f"clusters: [{{name: b, cluster: {{server: '{url}'}}}}]\n"
        "contexts: [{name: b, context: {cluster: b, user: b}}]\nusers: [{name: b, user: {token: t}}]\n"
    )
    api_client = await make_api_client(str(kubeconfig))
    for label, cache in (("without cache", None), ("with cache   ", QueryCache(ttl=5))):
        calls.clear()
        start = time.perf_counter()
        results = await asyncio.gather(*(pod_status(api_client, "checkout", "prod", cache=cache)
                                         for _ in range(storm)))
        wall = time.perf_counter() - start
        assert all(r.status is Status.CRITICAL for r in results), {r.summary for r in results}
        print(f"  {storm} x pods checkout -n prod {label}: {sum(calls.values()):3d} API calls, {wall:.3f} s")
    await api_client.close()
    await runner.cleanup()


async def main() -> None:
    await bench_concurrency()
    print("alert storm: identical diagnostics at once")
    await bench_coalescing()


if __name__ == "__main__":
    asyncio.run(main())
