"""/ops graph, slo, metric, promql and alerts end to end: signed slash commands to the real bot,
a real Prometheus scraping known traffic behind it, the fake Slack recording posts and uploads."""

from __future__ import annotations

import json
import struct

import pytest

from tests.servers.runbook_exporter import runbook_stack
from tests.slack_requests import send_slash_command

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(prometheus_factory, request):
    return runbook_stack(prometheus_factory, request.config)


@pytest.fixture
async def bot(start_bot, bot_env, stack):
    return await start_bot({**bot_env, "PROMETHEUS_URL": stack.prometheus.url, "GRAFANA_URL": "http://grafana.test"})


def events_url(bot) -> str:
    return f"http://127.0.0.1:{bot.port}/slack/events"


def posted_text(message) -> str:
    return json.dumps(message.blocks, ensure_ascii=False) + message.text


async def ops(http, bot, fake_slack, signing_secret, text: str):
    return await send_slash_command(http, events_url(bot), signing_secret, text=text,
                                    response_url=fake_slack.response_url())


async def posted(http, bot, fake_slack, signing_secret, text: str) -> str:
    """Run `/ops <text>` and return what the bot posted in the channel (blocks and text)."""
    await ops(http, bot, fake_slack, signing_secret, text)
    await fake_slack.wait_for("chat.postMessage", timeout=15)
    return posted_text(fake_slack.messages("C0OPS")[0])


async def test_graph_error_rate_uploads_a_png_chart_through_files_upload_v2(bot, http, fake_slack, signing_secret,
                                                                            stack):
    await ops(http, bot, fake_slack, signing_secret, "graph error-rate")
    await fake_slack.wait_for("files.completeUploadExternal", timeout=30)

    (file,) = fake_slack.files
    assert file.completed and file.channel == "C0OPS"
    assert file.filename == "error-rate.png" and file.title == "Error rate (last 1h)"
    assert file.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert struct.unpack(">II", file.content[16:24]) == (1200, 600)
    assert file.length == len(file.content) > 20_000
    methods = [c.method for c in fake_slack.calls if c.ok]
    assert methods.index("chat.postMessage") < methods.index("files.getUploadURLExternal") \
        < methods.index("files.completeUploadExternal")

    text = posted_text(fake_slack.messages("C0OPS")[0])
    assert "Error rate" in text and "— warning &gt; 1 %" in text  # 3.06 % over all four services
    assert f"{stack.prometheus.url}/graph?g0.expr=sum%28rate%28http_requests_total" in text
    assert "g0.range_input=1h" in text
    assert "http://grafana.test/explore?left=" in text


async def test_slo_posts_the_sla_table_met_and_missed_rows(bot, http, fake_slack, signing_secret):
    text = await posted(http, bot, fake_slack, signing_secret, "slo service=burning")
    assert "SLO · service=burning" in text
    assert "*Error rate (5 m)*\\n        measured 0.2 % · target &lt; 0.1 % · missed" in text
    assert "*Availability (30 d)*" in text and "measured 99.8 %" in text
    assert "exhausted (200.0 % used)" in text
    assert ":red_circle:" in text


async def test_slo_targets_and_labels_come_from_chatops_yaml(start_bot, bot_env, stack, http, fake_slack,
                                                             signing_secret, tmp_path):
    config = tmp_path / "chatops.yaml"
    config.write_text("slo:\n  error_rate_percent: 0.5\n  availability_percent: 99.5\n  labels: service=burning\n")
    bot = await start_bot({**bot_env, "PROMETHEUS_URL": stack.prometheus.url, "CHATOPS_CONFIG": str(config)})
    text = await posted(http, bot, fake_slack, signing_secret, "slo")
    assert "SLO · service=burning" in text
    assert "measured 0.2 % · target &lt; 0.5 % · met" in text
    assert "measured 60.0 % left" in text  # 0.2 % of a 0.5 % budget used


async def test_metric_with_an_unknown_preset_is_answered_only_to_the_user(bot, http, fake_slack, signing_secret):
    result = await ops(http, bot, fake_slack, signing_secret, "metric nosuch")
    assert result.json["response_type"] == "ephemeral"
    assert "Unknown preset `nosuch`. Presets: active-connections, db-pool" in result.json["text"]
    assert "/ops metric &lt;preset&gt; [&lt;label=value&gt;…]" in result.json["text"]
    assert not fake_slack.messages()


async def test_metric_posts_the_value_against_its_thresholds(bot, http, fake_slack, signing_secret):
    text = await posted(http, bot, fake_slack, signing_secret, "metric latency-p95 service=failing")
    assert "API latency p95 · service=failing" in text
    assert "4.875 s — critical &gt; 2 s" in text


async def test_promql_keeps_the_quotes_slack_curled(bot, http, fake_slack, signing_secret):
    curled = "promql sum by (service) (http_requests_active{service=\u201chealthy\u201d})"
    text = await posted(http, bot, fake_slack, signing_secret, curled)
    assert '{service=\\"healthy\\"}' in text and "value 5" in text


async def test_alerts_with_alertmanager_down_posts_an_error_naming_where(start_bot, bot_env, http, fake_slack,
                                                                        signing_secret, unused_tcp_port):
    bot = await start_bot({**bot_env, "ALERTMANAGER_URL": f"http://127.0.0.1:{unused_tcp_port}"})
    text = await posted(http, bot, fake_slack, signing_secret, "alerts")
    assert f"Alertmanager: cannot connect to http://127.0.0.1:{unused_tcp_port}: connection refused" in text
    assert ":warning:" in text


async def test_a_chart_titled_with_a_mention_is_uploaded_with_the_mention_neutralised(bot, http, fake_slack,
                                                                                     signing_secret):
    # The chart's title is the expression, which carries `<!everyone>` (a label value it sets).
    expr = 'label_replace(up, "x", "<!everyone>", "", "")'
    await ops(http, bot, fake_slack, signing_secret, f"graph {expr}")
    await fake_slack.wait_for("files.completeUploadExternal", timeout=30)

    (file,) = fake_slack.files
    assert file.completed and file.content.startswith(b"\x89PNG")
    assert file.title == 'label_replace(up, "x", "‹!everyone›", "", "") (last 1h)'
    assert file.initial_comment is None or "<!" not in file.initial_comment
    assert "<" not in file.filename + file.title
    text = posted_text(fake_slack.messages("C0OPS")[0])
    assert "<!everyone>" not in text and "&lt;!everyone&gt;" in text
