"""Issue 10, "Playbook steps cannot be injected": a label's value fills its argument as a value,
never as an option, extra words or PromQL syntax."""

import pytest

from bot.alerting.model import Alert
from bot.alerting.playbooks import PlaybookSteps, load, validate_steps
from bot.all_sections import Sections
from bot.checks.prometheus import GraphQuery
from bot.commands.table import build_table
from bot.errors import ConfigError
from diagnostics.presets import DEFAULT_PRESETS
from diagnostics.prometheus import preset_expr

TABLE = build_table(Sections())
CPU_TOP = "topk(5, sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{node=~%s}[5m])))"


def alert(name: str, url: str = "", **labels: str) -> Alert:
    return Alert(fingerprint="f", status="firing", labels={"alertname": name, **labels}, generator_url=url)


def steps(alert_: Alert, playbooks: dict | None = None, defaults: dict | None = None):
    return PlaybookSteps(load(playbooks, defaults), TABLE, "default").for_alert(alert_)


def one(template: str, **labels: str):
    (step,) = steps(alert("X", **labels), {"X": {"steps": [template]}})
    return step


def test_a_node_label_cannot_rewrite_a_promql_matcher():
    (_, _, top) = steps(alert("HighCPUUsage", node='a",node!="', instance="n:9100"))
    expected = CPU_TOP % r'"a\",node!=\""'
    assert top.invocation.args["expr"] == expected
    assert top.text == "promql " + expected
    assert top.invocation.args["range"] is None


@pytest.mark.parametrize("value, literal", [
    ('"', r'"\""'),
    ("a,b", '"a,b"'),
    ("}", '"}"'),
    ("{x}", '"{x}"'),
    ("\\", r'"\\"'),
    ("a\nb", r'"a\nb"'),
    ("two words", '"two words"'),
    ('x"}[5m]))) or vector(1) #', r'"x\"}[5m]))) or vector(1) #"'),
    ("\u202e", r'"\u202e"'),
])
def test_a_value_in_a_promql_string_is_escaped_and_cannot_end_it(value, literal):
    step = one('promql topk(5, up{{node="{node}"}})', node=value)
    assert step.invocation.args["expr"] == "topk(5, up{node=%s})" % literal


def test_a_value_outside_the_templates_quotes_becomes_a_whole_string_literal():
    step = one("promql count(up{{node={node}}}) --range 1h", node='a"} or vector(1)')
    assert step.invocation.args == {"expr": r'count(up{node="a\"} or vector(1)"})', "range": 3600}


def test_single_quoted_and_raw_strings_in_a_template():
    assert one("promql up{{node='{node}'}}", node="it's \"x\"").invocation.args["expr"] == r"""up{node='it\'s "x"'}"""
    assert one("promql up{{node=`{node}`}}", node="a\\b").invocation.args["expr"] == "up{node=`a\\b`}"
    step = one("promql up{{node=`{node}`}}", node="a`} or vector(1)")
    assert step.invocation is None and "cannot go in a `…` string" in step.problem


def test_an_alertname_cannot_add_an_option_to_its_own_expression():
    # No generatorURL: the alert's own series, its name a string literal.
    graph, _ = steps(alert('X"} or vector(1) --range 30d'))
    assert graph.invocation.args == {
        "query": GraphQuery(None, expr=r'ALERTS{alertname="X\"} or vector(1) --range 30d"}'), "range": 3600}


def test_the_rules_expression_is_the_whole_expression_and_never_read_for_options():
    url = "http://prometheus/graph?g0.expr=up+--range+30d&g0.tab=1"
    graph, _ = steps(alert("SomethingNew", url=url))
    assert graph.invocation.args == {"query": GraphQuery(None, expr="up --range 30d"), "range": 3600}
    # Nor read for a preset's name: it is PromQL.
    graph, _ = steps(alert("SomethingNew", url="http://p/graph?g0.expr=node-cpu+instance%3Dx"))
    assert graph.invocation.args["query"] == GraphQuery(None, expr="node-cpu instance=x")


def test_a_value_is_never_read_as_an_option():
    pods, events, nodes, logs, top, elb = steps(alert("APIServerDown", deployment="--previous", namespace="prod"))
    message = ("the alert's label deployment=`--previous` is not a valid deployment name: "
               "Kubernetes names are lowercase letters, digits, '-' and '.'")
    assert pods.invocation is None and pods.problem == message
    assert logs.invocation is None and logs.problem.startswith("the alert's label deployment=`--previous` is not")
    # The other steps still run, as written.
    assert events.invocation.args == {"namespace": "prod", "for": None}
    assert top.invocation.args == {"namespace": "prod", "sort": "memory"}
    assert nodes.invocation is not None and elb.invocation is not None


def test_an_option_looking_value_fills_an_options_value_only():
    step = one("logs checkout -n prod --grep {message}", message="--previous")
    assert step.invocation.args["grep"] == "--previous"
    assert step.invocation.args["previous"] is False
    step = one("logs checkout -n {ns}", ns="-p")
    assert step.invocation is None
    assert step.problem.startswith("the alert's label ns=`-p` is not a valid namespace")


def test_a_value_with_spaces_is_one_value_never_more_words():
    step = one("logs checkout -n prod --grep {message}", message="disk full --previous --tail 1")
    assert step.invocation.args["grep"] == "disk full --previous --tail 1"
    assert step.invocation.args["previous"] is False and step.invocation.args["tail"] is None
    step = one("pods {pod} -n prod", pod="web --all")
    assert step.problem.startswith("the alert's label pod=`web --all` is not a valid deployment name")


def test_a_label_filter_value_is_the_matchers_value():
    value = 'a" } or vector(1) instance!=x'
    step = one("metric node-cpu instance={host}", host=value)
    assert step.invocation.args == {"preset": "node-cpu", "filters": [("instance", "=", value)]}
    expr = preset_expr(DEFAULT_PRESETS["node-cpu"], step.invocation.args["filters"])
    assert r'instance="a\" } or vector(1) instance!=x"' in expr
    graph = one("graph node-cpu instance={host} --range 6h", host=value)
    assert graph.invocation.args == {"query": GraphQuery("node-cpu", (("instance", "=", value),)), "range": 21600}


def test_an_instance_label_fills_its_filter_as_one_value():
    step = one("metric node-cpu instance={instance}", instance='n":9100')
    assert step.invocation.args["filters"] == [("instance", "=", 'n":9100')]
    # Not one word: the runbook's fallback for instance, as before.
    assert one("metric node-cpu instance={instance}", instance="a b").invocation.args["filters"] == [
        ("instance", "=", ".+")]


def test_braces_in_a_value_are_not_placeholders():
    step = one("logs checkout -n prod --grep {message}", message="{deployment}")
    assert step.invocation.args["grep"] == "{deployment}"


def test_a_missing_label_still_skips_only_its_step():
    first, second = steps(alert("X"), {"X": {"steps": ["logs {pod} -n prod", "nodes"]}})
    assert first.invocation is None and first.problem == "the alert has no label 'pod'"
    assert second.invocation is not None


@pytest.mark.parametrize("step, message", [
    ("promql sum({expr})", "{expr} (the alert rule's expression) must be the whole expression"),
    ("logs {expr} -n prod", "{expr} (the alert rule's expression) must be the whole expression"),
    ("pods {deployment!r}", "is not a placeholder"),
])
def test_templates_are_checked_at_start(step, message):
    with pytest.raises(ConfigError, match="playbooks.X.steps.0.: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        validate_steps(load({"X": {"steps": [step]}}), TABLE, "default")


# Follow-up of issue 10: where PromQL reads a value as a regex, the value matches itself only.


@pytest.mark.parametrize("value, literal", [
    (".*", r'"\\.\\*"'),
    ("a|b", r'"a\\|b"'),
    ("10.0.0.1", r'"10\\.0\\.0\\.1"'),
    ('a"b(c)', r'"a\"b\\(c\\)"'),
    ("\\d", r'"\\\\d"'),
    ("node-7:9100", '"node-7:9100"'),
])
def test_a_value_in_a_regex_matcher_is_regex_escaped_then_string_escaped(value, literal):
    assert one('promql up{{node=~"{node}"}}', node=value).invocation.args["expr"] == "up{node=~%s}" % literal
    assert one("promql up{{node!~{node}}}", node=value).invocation.args["expr"] == "up{node!~%s}" % literal
    # Equality matchers and other strings are not regexes: the value only string-escaped, as before.
    step = one('promql label_join(up{{node="{node}"}}, "n", "{node}", "node")', node=".*")
    assert step.invocation.args["expr"] == 'label_join(up{node=".*"}, "n", ".*", "node")'


def test_the_templates_own_regex_around_a_value_stays_a_regex():
    step = one('promql up{{job=~"{job}-.*|other", node="{job}"}}', job="a.b")
    assert step.invocation.args["expr"] == r'up{job=~"a\\.b-.*|other", node="a.b"}'


def test_label_replaces_regex_argument_is_a_regex_and_its_others_are_not():
    step = one('promql label_replace(up, "dst", "{x}", "src", "{x}(.*)")', x="a.b")
    assert step.invocation.args["expr"] == r'label_replace(up, "dst", "a.b", "src", "a\\.b(.*)")'


@pytest.mark.parametrize("template, key", [
    ("metric node-cpu instance=~{instance}", "filters"),
    ("graph node-cpu instance=~{instance}", "query"),
    ("metric node-cpu instance!~pre-{instance}", "filters"),
])
def test_a_value_in_a_regex_label_filter_is_regex_escaped(template, key):
    step = one(template, instance="a|b.c")
    filters = step.invocation.args[key]
    matchers = filters.matchers if key == "query" else filters
    (name, op, value), = matchers
    assert value.endswith(r"a\|b\.c") and op in ("=~", "!~")
    assert r"a\|b\.c" in step.text
    expr = preset_expr(DEFAULT_PRESETS["node-cpu"], matchers)
    assert r'"a\\|b\\.c"' in expr or r'"pre-a\\|b\\.c"' in expr


def test_the_node_playbooks_regex_fallback_any_node_still_works():
    (metric, graph, top) = steps(alert("HighCPUUsage"))  # neither node nor instance
    assert metric.invocation.args["filters"] == [("instance", "=~", ".+")]
    assert top.invocation.args["expr"] == CPU_TOP % '".+"'
    # A label whose value is `.+` is that text, not any node.
    (metric, _, top) = steps(alert("HighCPUUsage", node=".+", instance=".+"))
    assert metric.invocation.args["filters"] == [("instance", "=~", r"\.\+")]
    assert top.invocation.args["expr"] == CPU_TOP % r'"\\.\\+"'


def test_the_node_playbooks_match_the_alerts_instance_and_node_exactly():
    (metric, graph, top) = steps(alert("HighCPUUsage", instance="10.0.0.7:9100"))
    assert metric.invocation.args["filters"] == [("instance", "=~", r"10\.0\.0\.7:9100")]
    assert top.invocation.args["expr"] == CPU_TOP % r'"10\\.0\\.0\\.7"'
    assert metric.text == r"metric node-cpu instance=~10\.0\.0\.7:9100"


def test_a_configured_default_is_a_regex_as_written():
    (step,) = steps(alert("X"), {"X": {"steps": ['promql up{{namespace=~"{namespace}"}}']}}, {"namespace": "prod-.*"})
    assert step.invocation.args["expr"] == 'up{namespace=~"prod-.*"}'
