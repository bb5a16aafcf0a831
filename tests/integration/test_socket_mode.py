"""Socket Mode: the same /ops command arriving over the websocket instead of HTTP."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest

from tests.plugins.kube import seed_checkout_prod
from tests.slack_requests import slash_command_body

pytestmark = pytest.mark.integration


def slash_payload(**fields) -> dict:
    return dict(parse_qsl(slash_command_body(**fields)))


async def test_slash_command_over_socket_mode_is_acked_and_posts_the_pods(start_bot, bot_env, kube, fake_slack):
    seed_checkout_prod(kube)
    env = {**bot_env, "SLACK_APP_TOKEN": fake_slack.app_token, "SLACK_SIGNING_SECRET": "",
           "KUBECONFIG": kube.kubeconfig_path}
    bot = await start_bot(env)
    assert bot.socket_handler is not None
    await fake_slack.socket_connected(timeout=10)

    ack = await fake_slack.socket_send(
        "slash_commands",
        slash_payload(text="pods checkout -n prod", response_url=fake_slack.response_url()),
        timeout=3,
    )
    assert "envelope_id" in ack
    await fake_slack.wait_for("chat.postMessage", timeout=10)
    text = json.dumps(fake_slack.messages("C0OPS")[0].blocks, ensure_ascii=False)
    assert "CrashLoopBackOff" in text and "OOMKilled" in text


async def test_usage_error_over_socket_mode_comes_back_in_the_ack(start_bot, bot_env, fake_slack):
    bot = await start_bot({**bot_env, "SLACK_APP_TOKEN": fake_slack.app_token})
    await fake_slack.socket_connected(timeout=10)
    ack = await fake_slack.socket_send("slash_commands", slash_payload(text="pdos"), timeout=3)
    assert ack["payload"]["response_type"] == "ephemeral"
    assert "Did you mean `pods`?" in ack["payload"]["text"]
    assert bot.runtime.metrics.requests.labels(kind="command", outcome="usage")._value.get() == 1


async def test_socket_mode_serves_no_http_events_endpoint(start_bot, bot_env, fake_slack, http):
    bot = await start_bot({**bot_env, "SLACK_APP_TOKEN": fake_slack.app_token})
    response = await http.post(f"http://127.0.0.1:{bot.port}/slack/events", data="x")
    assert response.status in (404, 405)
    assert (await http.get(f"http://127.0.0.1:{bot.port}/healthz")).status == 200
