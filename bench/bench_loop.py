"""Benchmark: does anything block the event loop? (issue 10, "The loop never stalls")

    .venv/bin/python -m bench.bench_loop

The real bot (in-process, HTTP mode) with the project's fake Slack Web API and a loopback
Kubernetes API: a deployment of PODS pods, each with a log of 2,000 lines of ~256 characters
(512 KiB, the most the bot reads per pod: 5 MiB in all). asyncio's debug mode is on with a 50 ms
slow-callback threshold (as PYTHONASYNCIODEBUG=1 gives).

1. Start-up: how long start_bot takes (the warm-up included) and the callbacks over 50 ms.
2. Ten `/ops pods checkout -n prod`, one after another, from the moment start_bot returns: the
   time until each is acknowledged (the HTTP answer to Slack's POST) and until its answer is
   posted. The first should be as fast as the tenth.
3. `/ops logs checkout -n prod --since 1h`: 5 MiB of log read, parsed, merged, and redacted for
   its upload as a file; the time to the answer and the callbacks over 50 ms. (The fake Slack
   takes uploads up to 1 MB: the 5 MB file is refused there, and retried quietly until the bot
   stops.)

Numbers are printed; nothing is asserted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import app  # noqa: E402
from bench.bench_alerts import SlowCallbacks, prefill_linecache  # noqa: E402
from bench.bench_diagnostics import _serve  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402
from tests.plugins.kube import running_ready  # noqa: E402
from tests.slack_requests import send_slash_command  # noqa: E402

PODS = 10
LOG_LINES = 2000  # what the bot asks each pod for with --since (logs.FETCH_LINES)
COMMANDS = 10
SECRET = "bench-secret"


def _log(pod: str) -> str:
    start = datetime.now(timezone.utc) - timedelta(minutes=30)
    padding = "x" * 180
    return "".join(f"{(start + timedelta(milliseconds=500 * i)).isoformat().replace('+00:00', 'Z')} "
                   f"INFO {pod} request {i:05} handled path=/api/v1/orders status=200 {padding}\n"
                   for i in range(LOG_LINES))


async def _kube_api() -> tuple[web.AppRunner, str]:
    pods = []
    for i in range(PODS):
        pod = running_ready(name=f"p{i}")
        pod["metadata"].update(name=f"checkout-abc-{i:02}", namespace="prod", labels={"app": "checkout"})
        pods.append(pod)
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "checkout", "namespace": "prod"},
        "spec": {"replicas": PODS, "selector": {"matchLabels": {"app": "checkout"}},
                 "template": {"metadata": {"labels": {"app": "checkout"}},
                              "spec": {"containers": [{"name": "app", "image": "checkout:1"}]}}},
        "status": {"replicas": PODS, "updatedReplicas": PODS, "readyReplicas": PODS, "availableReplicas": PODS},
    }
    pod_list = {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods}
    events = {"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": []}
    logs = {p["metadata"]["name"]: _log(p["metadata"]["name"]).encode() for p in pods}

    async def api(request: web.Request) -> web.Response:
        path = request.path
        if path.endswith("/log"):
            body = logs[path.split("/")[-2]]
            return web.Response(body=body[: int(request.query.get("limitBytes", len(body)))],
                                content_type="text/plain")
        if "/deployments/" in path:
            return web.json_response(deployment)
        return web.json_response(events if path.endswith("/events") else pod_list)

    application = web.Application()
    application.router.add_get("/{tail:.*}", api)
    return await _serve(application)


async def main() -> None:
    slow = SlowCallbacks()
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = 0.05
    logging.getLogger("asyncio").addHandler(slow)
    logging.getLogger("bot.state.worker").setLevel(logging.ERROR)  # the refused upload's retries
    kube_runner, kube_url = await _kube_api()
    workdir = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    (workdir / "kubeconfig").write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: b\n"
        f"clusters: [{{name: b, cluster: {{server: '{kube_url}'}}}}]\n"
        "contexts: [{name: b, context: {cluster: b, user: b}}]\nusers: [{name: b, user: {token: t}}]\n")
    async with FakeSlack() as slack, aiohttp.ClientSession() as http:
        env = {"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.api_url,
               "PORT": "0", "KUBECONFIG": str(workdir / "kubeconfig"), "STATE_URL": f"sqlite:///{workdir}/state.db",
               "CHATOPS_CONFIG": ""}
        started = time.perf_counter()
        bot = await app.start_bot(load_settings(env, mode="serve"), host="127.0.0.1")
        print(f"start-up: start_bot returned in {time.perf_counter() - started:.2f} s")
        app.freeze_start_up_objects()  # as `python app.py` does once the bot is up
        slow.report("during start-up")
        print(f"  debug mode's own first-use cost: the source of {prefill_linecache()} modules read")
        await asyncio.sleep(0)  # the callback that read them ends here
        slow.seen.clear()
        url = f"http://127.0.0.1:{bot.port}/slack/events"

        async def command(text: str) -> tuple[float, float]:
            slack.reset()
            bot.runtime.clients.cache.clear()
            start = time.perf_counter()
            answer = await send_slash_command(http, url, SECRET, text=text, response_url=slack.response_url())
            acked = time.perf_counter() - start
            assert answer.status == 200, answer
            await slack.wait_for("chat.postMessage", timeout=60)
            return acked, time.perf_counter() - start

        timings = [await command("pods checkout -n prod") for _ in range(COMMANDS)]
        acks = ", ".join(f"{ack * 1000:.0f}" for ack, _ in timings)
        answers = ", ".join(f"{done * 1000:.0f}" for _, done in timings)
        print(f"{COMMANDS} x /ops pods right after start: acked in {acks} ms; answered in {answers} ms")
        print(f"  first acked in {timings[0][0] * 1000:.0f} ms, tenth in {timings[-1][0] * 1000:.0f} ms")
        slow.report(f"during {COMMANDS} commands")

        _, done = await command("logs checkout -n prod --since 1h")
        await slack.wait_for("files.getUploadURLExternal", timeout=60)  # the whole log, redacted, on its way
        print(f"/ops logs on {PODS} pods x {LOG_LINES} lines (5 MiB): answered in {done * 1000:.0f} ms")
        slow.report("during /ops logs")
        await bot.stop()
    await kube_runner.cleanup()
    print(json.dumps({"first_ack_ms": round(timings[0][0] * 1000), "tenth_ack_ms": round(timings[-1][0] * 1000)}))


if __name__ == "__main__":
    asyncio.run(main())
