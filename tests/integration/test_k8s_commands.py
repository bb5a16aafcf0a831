"""`/ops deploy|events|logs|…` end to end: signed slash commands to the real server, kmock
behind it, the fake Slack Web API recording the message and the file uploads."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.plugins.kube import crashloop, log_lines, running_ready, ts
from tests.slack_requests import send_slash_command

pytestmark = pytest.mark.integration
BACKOFF = "Back-off restarting failed container"


@pytest.fixture
async def bot(start_bot, bot_env, kube):
    return await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path})


async def ops(bot, http, fake_slack, signing_secret, text: str) -> str:
    """Send `/ops <text>`, wait for the bot's post, and return it as one string."""
    result = await send_slash_command(http, f"http://127.0.0.1:{bot.port}/slack/events", signing_secret,
                                      text=text, response_url=fake_slack.response_url())
    assert result.status == 200
    await fake_slack.wait_for("chat.postMessage", timeout=10)
    (message,) = fake_slack.messages("C0OPS")
    return json.dumps(message.blocks, ensure_ascii=False) + message.text


async def test_deploy_posts_a_stalled_rollout_with_its_reason(bot, http, kube, fake_slack, signing_secret):
    kube.seed_deployment("checkout", "prod", replicas=3, pods=[running_ready(name="ok")], status={
        "observedGeneration": 3, "replicas": 4, "updatedReplicas": 1, "readyReplicas": 3,
        "availableReplicas": 3,
        "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                        "message": 'ReplicaSet "checkout-7f9c6d5b8d" has timed out progressing.',
                        "lastUpdateTime": ts(timedelta(minutes=2)),
                        "lastTransitionTime": ts(timedelta(minutes=2))}],
    })

    text = await ops(bot, http, fake_slack, signing_secret, "deploy checkout -n prod")

    assert "Deployment · checkout (prod)" in text
    assert "rollout stalled: ProgressDeadlineExceeded" in text
    assert ":red_circle:" in text


async def test_events_posts_folded_warnings_for_a_deployment(bot, http, kube, fake_slack, signing_secret):
    for count in (30, 7):
        kube.seed_event("prod", "Pod/checkout-5d8c7b9f4d-x2x9q", "BackOff", BACKOFF, count=count,
                        last_seen=timedelta(minutes=count))
    kube.seed_event("prod", "Pod/payments-6b7c8d9f5c-a1b2c", "BackOff", BACKOFF)

    text = await ops(bot, http, fake_slack, signing_secret, "events -n prod --for deploy/checkout")

    assert "Events · deployment/checkout (prod)" in text
    assert "BackOff ×37" in text
    assert "payments" not in text


async def test_a_long_log_arrives_as_a_file_beside_the_message(bot, http, kube, fake_slack, signing_secret):
    kube.seed_deployment("checkout", "prod", pods=[running_ready(name="aaaaa"), crashloop(name="bbbbb")])
    kube.set_log("prod", "aaaaa", log_lines(*[f"request {i}" for i in range(60)]))
    kube.set_log("prod", "bbbbb", log_lines("panic: DATABASE_URL is not set"), previous=True)

    text = await ops(bot, http, fake_slack, signing_secret, "logs checkout -n prod")
    await fake_slack.wait_for("files.completeUploadExternal", timeout=10)

    assert "Logs · checkout (prod)" in text and "request 59" in text
    (upload,) = fake_slack.files
    assert upload.filename == "logs-checkout-prod.txt"
    assert upload.channel == "C0OPS"
    lines = upload.content.decode().splitlines()
    assert len(lines) == 60
    assert lines[0].startswith("[aaaaa] ") and lines[0].endswith(" request 0")


async def test_log_lines_reach_slack_escaped(bot, http, kube, fake_slack, signing_secret):
    kube.seed_deployment("checkout", "prod", pods=[running_ready(name="aaaaa")])
    kube.set_log("prod", "aaaaa", log_lines("user said <!channel> look at <https://x|y>"))

    text = await ops(bot, http, fake_slack, signing_secret, "logs checkout -n prod --grep channel")

    assert "<!channel>" not in text and "<https://x|y>" not in text
    assert "&lt;!channel&gt;" in text and "&lt;https://x|y&gt;" in text


async def test_a_bad_since_is_a_usage_error_and_runs_nothing(bot, http, kube, fake_slack, signing_secret):
    result = await send_slash_command(http, f"http://127.0.0.1:{bot.port}/slack/events", signing_secret,
                                      text="logs checkout -n prod --since yesterday")

    assert result.json["response_type"] == "ephemeral"
    assert "`yesterday` is not a duration for since" in result.json["text"]
    assert "/ops logs &lt;deployment|pod&gt; [-n &lt;namespace&gt;]" in result.json["text"]
    await bot.worker.idle()  # barrier: the answer came after the handler ran; no job was recorded
    assert await bot.runtime.store.pending() == 0
    assert not fake_slack.messages()
    assert not [r for r in kube.kmock if "/log" in str(r.url.path)]


async def test_config_refuses_a_secret_in_the_acknowledgement(bot, http, kube, fake_slack, signing_secret):
    result = await send_slash_command(http, f"http://127.0.0.1:{bot.port}/slack/events", signing_secret,
                                      text="config secret/db-credentials -n prod")

    assert result.json["response_type"] == "ephemeral"
    assert "Secrets are never read" in result.json["text"]
    await bot.worker.idle()  # barrier: the answer came after the handler ran; no job was recorded
    assert await bot.runtime.store.pending() == 0
    assert not fake_slack.messages()
    assert not [r for r in kube.kmock if "secrets" in str(r.url.path)]
