"""Nothing lost: what the bot accepts is posted once, whatever Slack, Alertmanager or the bot does.

Each scenario runs on SQLite with one bot and on a real Redis with two replicas sharing it (the
webhook and the events go to either replica). Outages are scaled down from a minute to about a
second, with retries scaled down to match (FAST_RETRIES); the semantics are the same.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from aiohttp import ClientSession, web

from tests.plugins.kube import seed_checkout_prod
from tests.slack_requests import send_slash_command
from tests.storms import (
    FIXTURES,
    assert_each_alert_posted_once_with_its_investigation,
    fingerprints,
    notifications,
    split,
    storm,
)

pytestmark = pytest.mark.integration

TOKEN = "am-webhook-token-123"
FAST_RETRIES = {"poll_seconds": 0.05, "retry_initial_seconds": 0.05, "retry_max_seconds": 0.3,
                "lease_seconds": 3, "slack_timeout_seconds": 1}


def config_file(tmp_path: Path, **alerts) -> str:
    path = tmp_path / "chatops.yaml"
    path.write_text(yaml.safe_dump({
        "alerts": {"post_interval": 0, "edit_interval": 0.05, **alerts},
        "delivery": FAST_RETRIES,
        "playbooks": {"HighErrorRate": {"steps": ["pods checkout -n prod"]}},
    }))
    return str(path)


@pytest.fixture(params=["sqlite", "redis-2-replicas"])
def replicas(request):
    return request.param


@pytest.fixture
async def bots(replicas, start_bot, bot_env, kube, alertmanager, tmp_path, request):
    """The bot: one on SQLite, or two replicas on one Redis."""
    seed_checkout_prod(kube)
    env = {**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
           "ALERTMANAGER_URL": alertmanager.url, "CHATOPS_CONFIG": config_file(tmp_path)}
    if replicas == "sqlite":
        return [await start_bot(env)]
    env["STATE_URL"] = request.getfixturevalue("redis_server").url
    return [await start_bot(env), await start_bot(env)]


async def send(http: ClientSession, bot, body: dict) -> int:
    async with http.post(f"http://127.0.0.1:{bot.port}/alertmanager", json=body,
                         headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        return response.status


async def send_each(http: ClientSession, bot, body: dict) -> list[int]:
    """The storm's alerts, each its own group's notification (a route grouping by instance)."""
    return list(await asyncio.gather(*(send(http, bot, one) for one in notifications(body))))


async def drain(bots) -> None:
    await asyncio.wait_for(asyncio.gather(*(bot.threads.drain() for bot in bots)), 60)


@pytest.mark.parametrize("mode", ["hang", "500", "429"])
async def test_alerts_arriving_while_slack_fails_are_each_posted_once_when_it_recovers(
    bots, http, fake_slack, mode
):
    fake_slack.outage(mode, retry_after=1)
    body = storm(10)
    for bot, part in zip(bots, split(body, len(bots)), strict=True):  # replicas each take some of the alerts
        assert all([await send(http, bot, one) == 200 for one in part])
    # Slack stays down while the bot keeps trying (a post; after an unknown outcome, a look for it;
    # a hung call counts once the client gave up; a 429 is waited out, Retry-After 1 s, up to five
    # times per call, one call at a time per channel), then it is back.
    failures = {"hang": 20, "500": 30, "429": 8}[mode]
    await fake_slack.wait_for(lambda call: True, ok=False, count=failures, timeout=30)
    assert not fake_slack.messages()
    fake_slack.recover()
    await drain(bots)
    assert_each_alert_posted_once_with_its_investigation(fake_slack, fingerprints(body))


@pytest.mark.parametrize("status", [503, 200], ids=["503", "200-fatal_error"])
async def test_a_post_whose_answer_was_lost_is_found_not_posted_again(bots, http, fake_slack, status):
    # Slack posted, the bot heard 503, or 200 {"ok": false, "error": "fatal_error"} (which "may have succeeded").
    fake_slack.lose_answers("chat.postMessage", times=4, status=status)
    body = storm(3)
    assert await send_each(http, bots[0], body) == [200] * 3
    await drain(bots)
    assert_each_alert_posted_once_with_its_investigation(fake_slack, fingerprints(body))


async def test_a_post_whose_answer_never_came_is_found_not_posted_again(bots, http, fake_slack):
    fake_slack.lose_answers("chat.postMessage", times=1, status="hang")  # posted; the bot times out
    body = storm(1)
    assert await send(http, bots[-1], body) == 200
    await drain(bots)
    fake_slack.recover()
    assert_each_alert_posted_once_with_its_investigation(fake_slack, fingerprints(body))


async def test_a_failed_edit_is_retried_until_the_investigation_shows_its_results(bots, http, fake_slack):
    fake_slack.fail("chat.update", "internal_error", times=8)
    body = storm(1)
    assert await send(http, bots[0], body) == 200
    await drain(bots)
    assert_each_alert_posted_once_with_its_investigation(fake_slack, fingerprints(body))


async def test_the_same_alert_sent_to_each_replica_opens_one_thread(bots, http, fake_slack):
    body = storm(5)
    for _ in range(2):
        await asyncio.gather(*(send_each(http, bot, body) for bot in bots))
    await drain(bots)
    assert_each_alert_posted_once_with_its_investigation(fake_slack, fingerprints(body))


class SwitchableProxy:
    """HTTP in front of a real server that the test can take down (connections refused by a 503
    from nothing behind) and bring back, at the same address."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.up = True
        self.refused = 0
        self.refused_twice = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> SwitchableProxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        if not self.up:
            self.refused += 1
            if self.refused >= 2:
                self.refused_twice.set()
            return web.Response(status=503, text="upstream connect error")
        async with ClientSession() as session:
            async with session.request(request.method, self.target + request.path_qs,
                                       data=await request.read()) as answer:
                return web.Response(status=answer.status, body=await answer.read(),
                                    content_type=answer.content_type)


async def test_an_alertmanager_post_arriving_while_alertmanager_is_down_is_threaded_once_it_is_back(
    replicas, start_bot, bot_env, kube, alertmanager, tmp_path, request, fake_slack, signing_secret
):
    seed_checkout_prod(kube)
    proxy = await SwitchableProxy(alertmanager.url).start()
    try:
        env = {**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_URL": proxy.url,
               "CHATOPS_CONFIG": config_file(tmp_path)}
        if replicas != "sqlite":
            env["STATE_URL"] = request.getfixturevalue("redis_server").url
        bots = [await start_bot(env) for _ in range(1 if replicas == "sqlite" else 2)]
        alertmanager.post_alerts([{"labels": {"alertname": "HighErrorRate", "service": "checkout",
                                              "severity": "critical"}}])
        proxy.up = False
        fake_slack.deliver_events_to(f"http://127.0.0.1:{bots[-1].port}/slack/events", signing_secret)
        post = json.loads((FIXTURES / "slack-default-firing.json").read_text())
        channel = fake_slack.channel_id("#alerts")
        fake_slack.deliver_event({"type": "message", "subtype": "bot_message", "bot_id": "B0AM", "text": "",
                                  "attachments": post["attachments"], "channel": channel, "ts": "1732500999.000100"})
        assert await fake_slack.deliveries_answered() == [200]  # recorded before it was acknowledged
        await asyncio.wait_for(proxy.refused_twice.wait(), 10)  # the bot asked Alertmanager, and again
        assert not fake_slack.messages(channel)[1:]  # only Alertmanager's own post so far
        proxy.up = True
        await drain(bots)
        replies = [m for m in fake_slack.messages(channel) if m.thread_ts == "1732500999.000100"]
        assert len(replies) == 1
        assert "Pods · checkout (prod)" in json.dumps(replies[0].blocks, ensure_ascii=False)
    finally:
        await proxy.stop()


async def test_slash_command_answers_under_slacks_rate_limit_are_all_posted(
    start_bot, bot_env, kube, tmp_path, http, fake_slack, signing_secret
):
    """Slack allows about one post a second per channel; 23 commands at once all get their answer,
    paced like alert posts (scaled: 50 ms here, the fake refuses posts closer than 10 ms)."""
    seed_checkout_prod(kube)
    config = tmp_path / "chatops.yaml"
    config.write_text(yaml.safe_dump({"alerts": {"post_interval": 0.05}, "delivery": FAST_RETRIES}))
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "CHATOPS_CONFIG": str(config)})
    fake_slack.pace_per_channel(min_interval=0.01, retry_after=1)
    url = f"http://127.0.0.1:{bot.port}/slack/events"
    answers = await asyncio.gather(*(send_slash_command(http, url, signing_secret, text="pods checkout -n prod",
                                                        trigger_id=f"trigger-{i}") for i in range(23)))
    assert all(a.status == 200 and "Running" in a.json["text"] for a in answers)
    await asyncio.wait_for(bot.worker.idle(), 60)
    posted = fake_slack.messages("C0OPS")
    assert len(posted) == 23  # none lost (unpaced, 12 of 23 were: all retried at once after Retry-After)
    assert all("Pods · checkout (prod)" in json.dumps(m.blocks, ensure_ascii=False) for m in posted)


async def test_a_resolution_edits_an_alert_post_that_was_found_after_its_answer_was_lost(bots, http, fake_slack):
    fake_slack.lose_answers("chat.postMessage", times=1, status=503)  # the alert is posted; the bot hears 503
    assert await send(http, bots[0], storm(1)) == 200
    await fake_slack.wait_for("chat.postMessage", ok=False, count=1, timeout=10)
    resolved = storm(1)
    resolved["status"] = resolved["alerts"][0]["status"] = "resolved"
    resolved["alerts"][0]["endsAt"] = "2026-11-25T00:05:12.618Z"
    assert await send(http, bots[-1], resolved) == 200  # before the bot has found its post again
    await drain(bots)
    (root,) = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    assert "RESOLVED after 23 min" in json.dumps(root.blocks)
    replies = [m.text for m in fake_slack.messages("#alerts-critical") if m.thread_ts == root.ts]
    assert replies[-1] == ":white_check_mark: Resolved after 23 min."


@pytest.mark.parametrize("mode, told", [
    ("500", "Slack answered HTTP 500; the result was not posted (retrying)"),
    ("503", "Slack answered HTTP 503; the result was not posted (retrying)"),
    ("hang", "Slack timed out; the result may not have been posted (retrying)"),
])  # fmt: skip
async def test_who_asked_is_told_once_that_slack_failed_their_answer_which_is_posted_when_slack_is_back(
    start_bot, bot_env, kube, tmp_path, http, fake_slack, signing_secret, mode, told
):
    seed_checkout_prod(kube)
    config = tmp_path / "chatops.yaml"
    config.write_text(yaml.safe_dump({"delivery": FAST_RETRIES}))
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "CHATOPS_CONFIG": str(config)})
    fake_slack.outage(mode, "chat.postMessage")
    await send_slash_command(http, f"http://127.0.0.1:{bot.port}/slack/events", signing_secret,
                             text="pods checkout -n prod", response_url=fake_slack.response_url("asked"))
    await fake_slack.wait_for("chat.postMessage", ok=False, count=6, timeout=30)  # several retries
    (notice,) = fake_slack.response_posts("asked")
    assert notice.response_type == "ephemeral"
    assert notice.text == f":hourglass: `/ops pods checkout -n prod`: {told}"
    fake_slack.recover()
    await asyncio.wait_for(bot.worker.idle(), 30)
    (posted,) = fake_slack.messages("C0OPS")
    assert "Pods · checkout (prod)" in json.dumps(posted.blocks, ensure_ascii=False)
    assert len(fake_slack.response_posts("asked")) == 1  # told once, not once per retry
