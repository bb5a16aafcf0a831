"""Issue 10: a hostile label on a real webhook alert does not change the query a playbook step
sends to a real Prometheus, nor turn a value into a flag."""

from __future__ import annotations

import json
import urllib.parse

import pytest
import yaml

from tests.integration.test_alert_threads import TOKEN, post_webhook, thread, webhook_body

pytestmark = pytest.mark.integration

HOSTILE_NODE = 'a",node!="'


async def investigate(start_bot, bot_env, prometheus_factory, metrics_exporter, http, fake_slack, tmp_path,
                      steps: list[str], labels: dict[str, str]) -> tuple[str, str]:
    """The HighErrorRate playbook with these steps, run for a webhook alert with these labels
    against a real Prometheus scraping demo_load (two series, set by the test): the reply's blocks
    as JSON, and Prometheus's URL."""
    config = tmp_path / "chatops.yaml"
    config.write_text(yaml.safe_dump({"alerts": {"post_interval": 0, "edit_interval": 0.05},
                                      "playbooks": {"HighErrorRate": {"steps": steps}}}))
    with prometheus_factory(scrape_configs=[metrics_exporter.scrape_config(job_name="demo")]) as prometheus:
        prometheus.wait_for("count(demo_load) == 2")
        bot = await start_bot({**bot_env, "PROMETHEUS_URL": prometheus.url, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
                               "CHATOPS_CONFIG": str(config)})
        body = webhook_body()
        body["alerts"][0]["labels"].update(labels)
        assert (await post_webhook(http, bot, body))[0] == 200
        await bot.threads.drain()

    root = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None][0]
    (reply,) = thread(fake_slack, "#alerts-critical", root.ts)
    return json.dumps(reply.blocks, ensure_ascii=False), prometheus.url


async def test_a_hostile_label_does_not_change_the_query_prometheus_receives(
    start_bot, bot_env, prometheus_factory, metrics_exporter, http, fake_slack, tmp_path
):
    # Two series: the one the alert names (its node label is the hostile text), and node "a",
    # which the injected matcher `node="a",node!=""` would select instead.
    metrics_exporter.set("demo_load", 7, labels={"node": HOSTILE_NODE})
    metrics_exporter.set("demo_load", 1, labels={"node": "a"})
    text, prometheus_url = await investigate(
        start_bot, bot_env, prometheus_factory, metrics_exporter, http, fake_slack, tmp_path,
        ['promql sum(demo_load{{node="{node}"}}) * 100', "pods {deployment} -n prod"],
        {"node": HOSTILE_NODE, "deployment": "--previous"})
    query = r'sum(demo_load{node="a\",node!=\""}) * 100'
    # The query Prometheus ran (its link in the result) is the template with the value as one string.
    link = f"{prometheus_url}/graph?g0.expr={urllib.parse.quote(query, safe='')}&"
    assert link in text and json.dumps(f"`/ops promql {query}`", ensure_ascii=False)[1:-1] in text
    assert "value 700" in text  # the hostile node's series (7), not node "a"'s (1)
    # The value that looks like a flag is no deployment name: that step says so, the other ran.
    assert "the alert's label deployment=" in text and "is not a valid deployment name" in text


async def test_a_label_in_a_regex_matcher_matches_itself_only_at_a_real_prometheus(
    start_bot, bot_env, prometheus_factory, metrics_exporter, http, fake_slack, tmp_path
):
    # The alert's node is literally `.*`; as a regex it would also select node "b" (7 + 1).
    metrics_exporter.set("demo_load", 7, labels={"node": ".*"})
    metrics_exporter.set("demo_load", 1, labels={"node": "b"})
    text, prometheus_url = await investigate(
        start_bot, bot_env, prometheus_factory, metrics_exporter, http, fake_slack, tmp_path,
        ['promql sum(demo_load{{node=~"{node}"}}) * 100'], {"node": ".*"})
    query = r'sum(demo_load{node=~"\\.\\*"}) * 100'
    assert f"{prometheus_url}/graph?g0.expr={urllib.parse.quote(query, safe='')}&" in text
    assert "value 700" in text and "value 800" not in text  # node `.*` only, not node "b" too
