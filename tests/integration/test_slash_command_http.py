"""`/ops` end to end over HTTP: signed requests to the real server, kmock behind it, the
fake Slack Web API recording what the bot posts."""

from __future__ import annotations

import json
import time

import pytest

from tests.plugins.kube import image_pull_backoff, running_ready, seed_checkout_prod
from tests.slack_requests import send_slash_command

pytestmark = pytest.mark.integration


@pytest.fixture
async def bot(start_bot, bot_env, kube):
    seed_checkout_prod(kube)
    return await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path})


def events_url(bot) -> str:
    return f"http://127.0.0.1:{bot.port}/slack/events"


def posted_text(message) -> str:
    return json.dumps(message.blocks, ensure_ascii=False) + message.text


async def test_pods_command_is_acked_fast_and_posts_the_pods_with_their_reasons(bot, http, fake_slack, signing_secret):
    response_url = fake_slack.response_url("pods")
    started = time.monotonic()
    result = await send_slash_command(
        http, events_url(bot), signing_secret, text="pods checkout -n prod", response_url=response_url
    )
    assert result.status == 200
    assert time.monotonic() - started < 3
    (call,) = await fake_slack.wait_for("chat.postMessage", timeout=10)
    assert call.params["channel"] == "C0OPS"
    (message,) = fake_slack.messages("C0OPS")
    text = posted_text(message)
    assert "Pods · checkout (prod)" in text
    assert "CrashLoopBackOff" in text and "OOMKilled" in text
    assert "checkout-" in text and "payments" not in text
    assert "<@U0ALICE>" in text  # who asked, in the footer
    assert "`/ops pods checkout -n prod`" in text


@pytest.mark.parametrize(
    "forgery",
    [
        {"unsigned": True},
        {"signature": "v0=" + "0" * 64},
        {"timestamp": int(time.time()) - 6 * 60},
    ],
    ids=["unsigned", "wrong-signature", "stale-timestamp"],
)
async def test_forged_or_stale_requests_get_401_and_run_nothing(bot, http, fake_slack, signing_secret, forgery):
    result = await send_slash_command(http, events_url(bot), signing_secret, text="pods checkout -n prod",
                                      response_url=fake_slack.response_url(), **forgery)
    assert result.status == 401
    # Barrier: the answer came after the request was handled (listeners run before the response),
    # and the worker has nothing left: a listener that wrongly ran would have recorded a job.
    await bot.worker.idle()
    assert await bot.runtime.store.pending() == 0
    assert not [c for c in fake_slack.calls if c.method != "auth.test"], fake_slack.describe_calls()
    metrics = await (await http.get(f"http://127.0.0.1:{bot.port}/metrics")).text()
    assert 'chatops_requests_total{kind="command",outcome="rejected"} 1.0' in metrics


async def test_unknown_command_is_answered_only_to_the_user_with_a_suggestion(bot, http, fake_slack, signing_secret):
    result = await send_slash_command(http, events_url(bot), signing_secret, text="pdos checkout")
    assert result.status == 200
    assert result.json["response_type"] == "ephemeral"
    assert "Did you mean `pods`?" in result.json["text"]
    assert "Traceback" not in result.text
    await bot.worker.idle()
    assert await bot.runtime.store.pending() == 0
    assert not fake_slack.messages()


async def test_bad_argument_shows_the_usage_and_runs_nothing(bot, http, fake_slack, signing_secret):
    result = await send_slash_command(http, events_url(bot), signing_secret, text="pods checkout --since 1h")
    assert result.json["response_type"] == "ephemeral"
    assert "/ops pods &lt;deployment&gt; [-n &lt;namespace&gt;]" in result.json["text"]
    await bot.worker.idle()
    assert await bot.runtime.store.pending() == 0
    assert not fake_slack.messages()


async def test_help_lists_every_command_with_its_usage(bot, http, signing_secret):
    result = await send_slash_command(http, events_url(bot), signing_secret, text="help")
    body = json.dumps(result.json)
    assert result.json["response_type"] == "ephemeral"
    assert "/ops pods &lt;deployment&gt; [-n &lt;namespace&gt;]" in body


async def test_pod_names_and_backend_text_reach_slack_escaped(bot, http, kube, fake_slack, signing_secret):
    kube.seed_deployment(
        "web", "prod", replicas=2,
        pods=[running_ready(name="evil-<!channel>"), image_pull_backoff("evil.example/<https://x|y>")],
    )
    await send_slash_command(http, events_url(bot), signing_secret, text="pods web -n prod",
                             response_url=fake_slack.response_url())
    await fake_slack.wait_for("chat.postMessage", timeout=10)
    text = posted_text(fake_slack.messages()[0])
    assert "<!channel>" not in text and "<https://x|y>" not in text
    assert "&lt;!channel&gt;" in text and "&lt;https://x|y&gt;" in text


async def test_a_channel_the_bot_is_not_in_gets_the_result_through_response_url(bot, http, fake_slack, signing_secret):
    fake_slack.not_in_channel.add("C0PRIVATE")
    response_url = fake_slack.response_url("private")
    await send_slash_command(http, events_url(bot), signing_secret, text="pods checkout -n prod",
                             channel_id="C0PRIVATE", response_url=response_url)
    await fake_slack.wait_for(lambda c: c.method == "response_url" and "in_channel" in json.dumps(c.params),
                              timeout=10)
    post = fake_slack.response_posts("private")[-1]
    assert post.response_type == "in_channel"
    assert "CrashLoopBackOff" in json.dumps(post.blocks)


async def test_missing_deployment_gets_a_one_line_answer(bot, http, fake_slack, signing_secret):
    await send_slash_command(http, events_url(bot), signing_secret, text="pods nosuch -n prod",
                             response_url=fake_slack.response_url())
    await fake_slack.wait_for("chat.postMessage", timeout=10)
    assert "`nosuch` not found in namespace `prod`" in posted_text(fake_slack.messages()[0])


async def test_a_rate_limited_post_is_retried_after_retry_after(bot, http, fake_slack, signing_secret):
    fake_slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    await send_slash_command(http, events_url(bot), signing_secret, text="pods checkout -n prod",
                             response_url=fake_slack.response_url())
    await fake_slack.wait_for("chat.postMessage", timeout=10)
    assert fake_slack.ratelimited_count == 1
    assert len(fake_slack.messages()) == 1


async def test_kubernetes_not_configured_says_what_to_set(start_bot, bot_env, http, fake_slack, signing_secret):
    bot = await start_bot(bot_env)
    await send_slash_command(http, events_url(bot), signing_secret, text="pods checkout -n prod",
                             response_url=fake_slack.response_url())
    await fake_slack.wait_for("chat.postMessage", timeout=10)
    assert "Kubernetes is not configured (set KUBECONFIG" in posted_text(fake_slack.messages()[0])


async def test_kubernetes_down_gives_an_error_result_naming_where(start_bot, bot_env, http, fake_slack,
                                                                  signing_secret, tmp_path, unused_tcp_port):
    from tests.plugins.kube import write_kubeconfig

    kubeconfig = write_kubeconfig(tmp_path / "down", f"http://127.0.0.1:{unused_tcp_port}")
    bot = await start_bot({**bot_env, "KUBECONFIG": str(kubeconfig)})
    await send_slash_command(http, events_url(bot), signing_secret, text="pods checkout -n prod",
                             response_url=fake_slack.response_url())
    await fake_slack.wait_for("chat.postMessage", timeout=15)
    text = posted_text(fake_slack.messages()[0])
    assert f"127.0.0.1:{unused_tcp_port}" in text
    assert ":warning:" in text


async def test_with_slacks_auth_test_hanging_commands_are_still_acknowledged_and_answered_later(
    start_bot, bot_env, kube, http, fake_slack, signing_secret
):
    seed_checkout_prod(kube)
    fake_slack.outage("hang", ["auth.test"])  # Slack unreachable for auth.test from the start
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path})

    help_answer = await send_slash_command(http, events_url(bot), signing_secret, text="help",
                                           response_url=fake_slack.response_url())
    typo = await send_slash_command(http, events_url(bot), signing_secret, text="pdos",
                                    response_url=fake_slack.response_url())
    pods = await send_slash_command(http, events_url(bot), signing_secret, text="pods checkout -n prod",
                                    response_url=fake_slack.response_url())

    assert help_answer.status == 200 and "pods" in help_answer.text
    assert typo.status == 200 and "Did you mean `pods`" in typo.json["text"]
    assert pods.status == 200 and "Running" in pods.json["text"]  # recorded, then acknowledged
    await fake_slack.wait_for("chat.postMessage", timeout=10)  # answered: only auth.test hangs
    assert "CrashLoopBackOff" in posted_text(fake_slack.messages("C0OPS")[0])
    fake_slack.recover()
