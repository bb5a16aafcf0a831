"""/healthz, /readyz and /metrics against real backends."""

from __future__ import annotations

import json

import pytest

from tests.slack_requests import send_slash_command

pytestmark = pytest.mark.integration


async def test_healthz_answers_while_the_process_is_alive(start_bot, bot_env, http):
    bot = await start_bot(bot_env)
    response = await http.get(f"http://127.0.0.1:{bot.port}/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_is_ready_when_slack_and_every_configured_backend_answer(
    start_bot, bot_env, http, kube, prometheus, alertmanager, fake_elasticsearch, aws_env, postgres_server
):
    bot = await start_bot({
        **bot_env,
        "KUBECONFIG": kube.kubeconfig_path,
        "PROMETHEUS_URL": prometheus.url,
        "ALERTMANAGER_URL": alertmanager.url,
        "ELASTICSEARCH_URL": fake_elasticsearch.url,
        "DATABASE_URL": postgres_server.dsn,
        **aws_env.env,
    })
    response = await http.get(f"http://127.0.0.1:{bot.port}/readyz")
    body = await response.json()
    assert response.status == 200, json.dumps(body)  # the whole answer: which check failed, and why
    assert body["ready"] is True
    assert set(body["checks"]) == {
        "slack", "state", "kubernetes", "prometheus", "alertmanager", "elasticsearch", "aws", "database"
    }
    assert all(check["ok"] for check in body["checks"].values())


async def test_readyz_names_the_backend_that_is_down(start_bot, bot_env, http, prometheus, unused_tcp_port):
    bot = await start_bot({
        **bot_env,
        "PROMETHEUS_URL": prometheus.url,
        "ALERTMANAGER_URL": f"http://127.0.0.1:{unused_tcp_port}",
        "DATABASE_URL": f"postgresql://app:pw-not-shown@127.0.0.1:{unused_tcp_port}/app",
    })
    response = await http.get(f"http://127.0.0.1:{bot.port}/readyz")
    body = await response.json()
    assert response.status == 503
    assert body["checks"]["prometheus"]["ok"] is True
    assert body["checks"]["alertmanager"]["ok"] is False
    assert body["checks"]["alertmanager"]["error"]
    assert body["checks"]["database"]["ok"] is False
    assert "pw-not-shown" not in await response.text()


async def test_readyz_fails_when_slack_rejects_the_token(start_bot, bot_env, http):
    bot = await start_bot({**bot_env, "SLACK_BOT_TOKEN": "xoxb-revoked-token"})
    response = await http.get(f"http://127.0.0.1:{bot.port}/readyz")
    body = await response.json()
    assert response.status == 503
    assert "invalid_auth" in body["checks"]["slack"]["error"]
    assert "xoxb-revoked-token" not in await response.text()


async def test_metrics_count_requests_by_kind_and_outcome(start_bot, bot_env, http, signing_secret, fake_slack):
    bot = await start_bot(bot_env)
    url = f"http://127.0.0.1:{bot.port}"
    await send_slash_command(http, f"{url}/slack/events", signing_secret, text="pdos")
    await send_slash_command(http, f"{url}/slack/events", signing_secret, text="help")
    await send_slash_command(http, f"{url}/slack/events", signing_secret, text="help", unsigned=True)
    response = await http.get(f"{url}/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert 'chatops_requests_total{kind="command",outcome="usage"} 1.0' in text
    assert 'chatops_requests_total{kind="command",outcome="ok"} 1.0' in text
    assert 'chatops_requests_total{kind="command",outcome="rejected"} 1.0' in text
    assert 'chatops_handler_duration_seconds_count{kind="command"} 2.0' in text
    assert "chatops_backend_errors_total" in text
