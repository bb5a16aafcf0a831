"""Benchmark: alert to first reply, alert to full report, and an alert storm.

    .venv/bin/python -m bench.bench_alerts [--storm 300] [--groups 3] [--post-interval 1.0]

The real bot (in-process, HTTP mode) with the project's fake Slack Web API and a loopback
Kubernetes API that answers after 50 ms and counts requests. A webhook alert's playbook
here is `pods` + `events`, both Kubernetes reads.

1. One alert, ROUNDS times: webhook POST -> the first thread reply ("investigating…"), and
   -> the final edit of that reply with every result.
2. A storm of N alerts in G Alertmanager groups, a webhook call each, all at once, into one
   channel at Slack's real pace (--post-interval, one message per second per channel): time
   until the calls are answered (every alert recorded in the store first), posts per storm
   (top-level and in threads), time until the storm is fully visible (every group posted with
   its finished investigation), Slack calls made, Kubernetes API calls made.

--loop-debug: asyncio's debug mode with a 50 ms slow-callback threshold (as PYTHONASYNCIODEBUG=1
gives, measured here instead of read from the log): how many callbacks blocked the loop longer,
and the worst, during start-up, the single alerts and the storm.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import linecache
import logging
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import app  # noqa: E402
from bench.bench_diagnostics import _kube_objects, _serve  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402

ROUNDS = 5
TOKEN = "bench-token"
WEBHOOK = json.loads((Path(__file__).resolve().parents[1] / "tests/fixtures/alertmanager/webhook-firing.json")
                     .read_text())


async def _kube_api(calls: Counter[str]) -> tuple[web.AppRunner, str]:
    deployment, pod_list = _kube_objects()
    events = {"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": []}

    async def api(request: web.Request) -> web.Response:
        calls[request.path] += 1
        await asyncio.sleep(0.05)
        if "/deployments/" in request.path:
            return web.json_response(deployment)
        return web.json_response(events if request.path.endswith("/events") else pod_list)

    application = web.Application()
    application.router.add_get("/{tail:.*}", api)
    return await _serve(application)


def _body(count: int, run: int, group: int = 0) -> dict[str, Any]:
    body = copy.deepcopy(WEBHOOK)
    template = body["alerts"][0]
    body["alerts"] = []
    for i in range(count):
        alert = copy.deepcopy(template)
        alert["fingerprint"] = f"{run:04x}{group:04x}{i:08x}"
        alert["labels"] = {**alert["labels"], "instance": f"pod-{group}-{i}", "namespace": "prod",
                           "deployment": "checkout", "shard": str(group)}
        body["alerts"].append(alert)
    body["groupKey"] = f'{{}}/{{}}:{{alertname="HighErrorRate", run="{run}", shard="{group}"}}'
    return body


class SlowCallbacks(logging.Handler):
    """asyncio's "Executing <callback> took 0.123 seconds" warnings, as (seconds, what)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        match = re.search(r"took ([0-9.]+) seconds", message)
        if message.startswith("Executing") and match:
            self.seen.append((float(match.group(1)), message[:160]))

    def report(self, what: str) -> None:
        worst = sorted(self.seen, reverse=True)[:3]
        print(f"  loop: {len(self.seen)} callback(s) over 50 ms {what}" +
              (f"; worst {worst[0][0] * 1000:.0f} ms" if worst else ""))
        for seconds, text in worst:
            print(f"    {seconds * 1000:.0f} ms: {text}")
        self.seen.clear()


def prefill_linecache() -> int:
    """Debug mode captures a stack, source lines included, for every callback and future; the
    first time a code path runs that reads its modules' source (the Kubernetes client's
    core_v1_api.py alone is 1.5 MB): ~0.3 s on the first Kubernetes command, a cost of debug mode,
    not of the bot (without debug mode that command blocks the loop under 20 ms). Read them now,
    so that what is counted below is the bot's."""
    files = {getattr(m, "__file__", None) for m in list(sys.modules.values())}
    for file in files:
        if file and file.endswith(".py"):
            linecache.getlines(file)
    return len(files)


async def main(storm: int, groups: int, post_interval: float, loop_debug: bool = False) -> None:
    slow = SlowCallbacks()
    if loop_debug:
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = 0.05
        logging.getLogger("asyncio").addHandler(slow)
    calls: Counter[str] = Counter()
    kube_runner, kube_url = await _kube_api(calls)
    workdir = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    (workdir / "kubeconfig").write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: b\n"
        f"clusters: [{{name: b, cluster: {{server: '{kube_url}'}}}}]\n"
        "contexts: [{name: b, context: {cluster: b, user: b}}]\nusers: [{name: b, user: {token: t}}]\n")

    def config(interval: float) -> str:
        path = workdir / f"chatops-{interval}.yaml"
        path.write_text(json.dumps({
            "alerts": {"post_interval": interval, "edit_interval": 0.2},
            "playbooks": {"HighErrorRate": {"steps": ["pods {deployment} -n {namespace}", "events -n {namespace}"]}},
        }))
        return str(path)

    async with FakeSlack() as slack:
        env = {"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_SIGNING_SECRET": "bench-secret",
               "SLACK_API_URL": slack.api_url, "PORT": "0", "KUBECONFIG": str(workdir / "kubeconfig"),
               "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN, "STATE_URL": f"sqlite:///{workdir}/state.db",
               "CHATOPS_CONFIG": config(0.0)}
        bot = await app.start_bot(load_settings(env, mode="serve"), host="127.0.0.1")
        if loop_debug:
            slow.report("during start-up")
            app.freeze_start_up_objects()  # as `python app.py` does once the bot is up
            print(f"  debug mode's own first-use cost: the source of {prefill_linecache()} modules read")
            await asyncio.sleep(0)
            slow.seen.clear()
        url = f"http://127.0.0.1:{bot.port}/alertmanager"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession() as http:
            first, full = [], []
            for run in range(ROUNDS):
                slack.reset()
                bot.runtime.clients.cache.clear()  # each alert's reads go to the API (50 ms each)
                start = time.perf_counter()
                await http.post(url, json=_body(1, run), headers=headers)
                await slack.wait_for(lambda c: c.method == "chat.postMessage" and bool(c.params.get("thread_ts")),
                                     timeout=30)
                first.append(time.perf_counter() - start)
                await bot.threads.drain()
                full.append(time.perf_counter() - start)
            print(f"one alert ({ROUNDS} runs): first reply median {statistics.median(first) * 1000:.0f} ms "
                  f"(max {max(first) * 1000:.0f}); full report median {statistics.median(full) * 1000:.0f} ms "
                  f"(max {max(full) * 1000:.0f})")
            if loop_debug:
                slow.report(f"during {ROUNDS} single alerts")
            await bot.stop()

            # The storm: a bot at Slack's real pace, the fake holding it to that pace.
            bot = await app.start_bot(load_settings({**env, "CHATOPS_CONFIG": config(post_interval)}, mode="serve"),
                                      host="127.0.0.1")
            url = f"http://127.0.0.1:{bot.port}/alertmanager"
            slack.reset()
            slack.pace_per_channel(min_interval=post_interval * 0.9, retry_after=1)
            calls.clear()
            bot.runtime.clients.cache.clear()  # the storm starts cold
            bodies = [_body(storm // groups + (g < storm % groups), 999, g) for g in range(groups)]
            start = time.perf_counter()

            async def notify(body: dict[str, Any]) -> None:
                async with http.post(url, json=body, headers=headers) as answer:
                    assert answer.status == 200, await answer.text()

            await asyncio.gather(*(notify(body) for body in bodies))
            accepted = time.perf_counter() - start  # every alert recorded in the store before the 200
            await bot.threads.drain()
            visible = time.perf_counter() - start
        roots = [m for m in slack.messages() if m.thread_ts is None]
        replies = [m for m in slack.messages() if m.thread_ts is not None]
        listed = sum(int(m.group(1)) for root in roots
                     for m in [re.search(r"— (\d+) alerts", json.dumps(root.blocks, ensure_ascii=False))] if m)
        slack_calls = Counter(c.method for c in slack.calls)
        print(f"storm of {storm} alerts in {groups} groups ({groups} webhook calls at once): recorded and answered "
              f"200 in {accepted * 1000:.0f} ms")
        print(f"  {len(roots)} top-level posts (for {listed} alerts), {len(replies)} thread replies; fully visible "
              f"(every group posted, every investigation finished) in {visible:.1f} s at one post per "
              f"{post_interval} s per channel; before groups: {2 * storm} posts, >= {2 * storm * post_interval:.0f} s")
        print(f"  Slack calls {dict(slack_calls)}, 429s {slack.ratelimited_count}")
        print(f"  Kubernetes API calls: {sum(calls.values())} (each group's distinct steps run once)")
        if loop_debug:
            slow.report(f"during the storm of {storm}")
        await bot.stop()
    await kube_runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--storm", type=int, default=300)
    parser.add_argument("--groups", type=int, default=3)
    parser.add_argument("--post-interval", type=float, default=1.0, help="Slack's pace per channel (s)")
    parser.add_argument("--loop-debug", action="store_true", help="count callbacks that block the loop > 50 ms")
    options = parser.parse_args()
    asyncio.run(main(options.storm, options.groups, options.post_interval, options.loop_debug))
