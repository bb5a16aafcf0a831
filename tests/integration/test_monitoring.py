"""`/ops monitoring`: several diagnostics in one report, each failing on its own."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest
from aiohttp import web

from diagnostics.monitoring import prometheus_health
from diagnostics.result import Status
from tests.servers.background import BackgroundServer
from tests.slack_requests import send_slash_command

pytestmark = pytest.mark.integration


@pytest.fixture
async def fake_grafana():
    """Grafana can't be installed here; its /api/health is small enough to stand in for."""
    state = {"database": "ok"}

    async def health(request: web.Request) -> web.Response:
        status = 200 if state["database"] == "ok" else 503
        return web.json_response({"commit": "abc", "database": state["database"], "version": "10.4.2"},
                                 status=status)

    app = web.Application()
    app.router.add_get("/api/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", state
    await runner.cleanup()


@pytest.fixture
def stack_env(bot_env, prometheus_factory, metrics_exporter, alertmanager_factory, fake_elasticsearch,
              fake_grafana, tmp_path):
    prometheus = prometheus_factory(scrape_configs=[metrics_exporter.scrape_config(job_name="checkout")])
    prometheus.wait_for('up{job="checkout"} == 1', timeout=20)  # its target found: no targets is a warning
    alertmanager = alertmanager_factory()
    config = tmp_path / "chatops.yaml"
    config.write_text("diagnostic_timeout: 1\n")
    env = {
        **bot_env,
        "CHATOPS_CONFIG": str(config),
        "PROMETHEUS_URL": prometheus.url,
        "ALERTMANAGER_URL": alertmanager.url,
        "ELASTICSEARCH_URL": fake_elasticsearch.url,
        "GRAFANA_URL": fake_grafana[0],
    }
    yield env, prometheus, alertmanager
    prometheus.stop()
    alertmanager.stop()


def _results_by_title(message) -> dict[str, str]:
    """Title -> the section text that opens it, from a posted report."""
    out = {}
    for block in message.blocks:
        text = block.get("text", {}).get("text", "") if block["type"] == "section" else ""
        for title in ("Prometheus", "Alertmanager", "Elasticsearch", "Grafana"):
            if text.split("\n", 1)[0].endswith(f"*{title}*"):
                out[title] = text
    return out


async def _monitoring(bot, http, fake_slack, signing_secret, count: int):
    started = time.monotonic()
    await send_slash_command(http, f"http://127.0.0.1:{bot.port}/slack/events", signing_secret,
                             text="monitoring", response_url=fake_slack.response_url())
    await fake_slack.wait_for("chat.postMessage", timeout=15, count=count)
    return fake_slack.messages()[count - 1], time.monotonic() - started


async def test_healthy_stack_reports_every_component_ok(start_bot, stack_env, http, fake_slack, signing_secret):
    env, prometheus, _ = stack_env
    bot = await start_bot(env)
    message, _ = await _monitoring(bot, http, fake_slack, signing_secret, 1)
    results = _results_by_title(message)
    assert set(results) == {"Prometheus", "Alertmanager", "Elasticsearch", "Grafana"}
    assert all(text.startswith(":large_green_circle:") for text in results.values()), results
    assert "cluster health green" in results["Elasticsearch"]


async def test_each_backend_stopped_mid_test_fails_alone_within_its_timeout(
    start_bot, stack_env, http, fake_slack, signing_secret, fake_elasticsearch, fake_grafana
):
    env, prometheus, alertmanager = stack_env
    bot = await start_bot(env)
    await _monitoring(bot, http, fake_slack, signing_secret, 1)

    alertmanager.stop()  # down: connection refused
    fake_elasticsearch.delay(5)  # slow: longer than the 1 s diagnostic timeout
    fake_grafana[1]["database"] = "failing"  # up but unhealthy
    message, elapsed = await _monitoring(bot, http, fake_slack, signing_secret, 2)
    fake_elasticsearch.delay(0)

    results = _results_by_title(message)
    assert results["Prometheus"].startswith(":large_green_circle:")
    assert results["Alertmanager"].startswith(":warning:")
    assert "cannot connect" in results["Alertmanager"] and alertmanager.url in results["Alertmanager"]
    assert results["Elasticsearch"].startswith(":warning:")
    assert "timed out after 1 s" in results["Elasticsearch"]
    assert results["Grafana"].startswith(":red_circle:")
    # The runbook's next step for what is broken, and not for what works.
    text = json.dumps(message.blocks)
    assert "kubectl logs deployment/alertmanager -n monitoring --tail=50" in text
    assert "deployment/prometheus" not in text
    # Concurrent: the slow one costs its own timeout, not the sum of everything.
    assert elapsed < 4, elapsed


async def test_prometheus_with_a_target_down_names_it_and_the_next_step(
    start_bot, stack_env, http, fake_slack, signing_secret, metrics_exporter
):
    env, prometheus, _ = stack_env
    metrics_exporter.fail_with(500)
    prometheus.wait_for('up{job="checkout"} == 0', timeout=20)
    bot = await start_bot(env)
    message, _ = await _monitoring(bot, http, fake_slack, signing_secret, 1)
    results = _results_by_title(message)
    assert results["Prometheus"].startswith(":large_yellow_circle:")
    assert "1 scrape target(s) down" in results["Prometheus"]
    assert "kubectl get servicemonitor" in json.dumps(message.blocks)


# --- prometheus_health on its own: only a real list of targets, all up, is green ----------------


async def test_prometheus_without_scrape_targets_is_a_warning_not_all_up(prometheus):

    async with aiohttp.ClientSession() as session:
        result = await prometheus_health(session, prometheus.url, timeout=5)
    assert (result.status, result.summary) == (Status.WARNING, "ready; no scrape targets")
    assert result.fields["Targets"] == "0/0 up"
    assert "kubectl get servicemonitor -n <namespace>  (service discovery)" in result.lines


@pytest.mark.parametrize("status, body, content_type, problem", [
    (502, "<html>Bad Gateway</html>", "text/html", "HTTP 502"),
    (200, "<html>Sign in</html>", "text/html", "no JSON list of active targets"),
    (200, '{"status": "success", "data": {}}', "application/json", "no JSON list of active targets"),
])  # fmt: skip
async def test_prometheus_ready_but_targets_api_broken_is_an_error_not_all_up(status, body, content_type,
                                                                              problem):
    """Prometheus behind a proxy: /-/ready passes, the targets API answers something else."""

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="Prometheus Server is Ready.\n")

    async def targets(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type)

    async def tsdb(request: web.Request) -> web.Response:
        return web.json_response({"status": "success", "data": {"headStats": {"numSeries": 10}}})

    app = web.Application()
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/api/v1/targets", targets)
    app.router.add_get("/api/v1/status/tsdb", tsdb)
    server = BackgroundServer(app)
    server.start()
    try:
        async with aiohttp.ClientSession() as session:
            result = await prometheus_health(session, server.url, timeout=5)
    finally:
        server.stop()
    assert result.status is Status.ERROR
    assert result.summary == f"ready, but /api/v1/targets answered {problem} at {server.url}"
    assert "kubectl logs deployment/prometheus -n monitoring --tail=50" in result.lines
