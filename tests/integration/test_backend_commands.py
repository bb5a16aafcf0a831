"""The Elasticsearch, AWS, PostgreSQL and HTTP commands as /ops commands: parsed from the
command table and run by bot.commands.execute (what Slack and the terminal share), end to end
through the bot over HTTP, with each backend stopped, and with bad chatops.yaml sections."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.all_sections import Sections, load_sections
from bot.clients import Clients
from bot.commands.execute import execute
from bot.commands.model import Context
from bot.commands.parser import CommandTable
from bot.commands.report import Report
from bot.commands.table import build_table
from bot.errors import ConfigError, UsageError
from bot.settings import Settings, load_settings
from diagnostics.result import Status
from tests.servers.aws import REGION
from tests.slack_requests import send_slash_command
from tests.test_aws_diagnostics import create_db, rds_metrics
from tests.test_elasticsearch_diagnostics import INDEX, error_doc

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def ops_context(**settings: Any) -> AsyncIterator[tuple[Context, CommandTable, list[str]]]:
    """A Context and command table as app.py builds them, and the list of backends reported failing."""
    failed: list[str] = []
    built = Settings(diagnostic_timeout=settings.pop("diagnostic_timeout", 2), **settings)
    table = build_table(load_sections(built))
    clients = await Clients.build(built)
    try:
        yield Context(built, clients, on_backend_error=failed.append), table, failed
    finally:
        await clients.close()


async def ops(text: str, **settings: Any) -> tuple[Report, list[str], float]:
    """Run `/ops <text>`: the report, the backends that failed, and how long it took."""
    async with ops_context(**settings) as (ctx, table, failed):
        started = time.monotonic()
        report = await execute(table.parse(text, "default"), ctx)
        return report, failed, time.monotonic() - started


# --- a stopped or hanging backend is an error Result naming where, within its timeout ---------


async def test_elasticsearch_down_is_an_error_naming_the_url(unused_tcp_port):
    url = f"http://127.0.0.1:{unused_tcp_port}"
    report, failed, took = await ops("errors", elasticsearch_url=url)
    (result,) = report.results
    assert result.status is Status.ERROR
    assert result.summary == f"Elasticsearch: ConnectionError: cannot connect: Connection refused at {url}"
    assert failed == ["Elasticsearch"] and took < 3


async def test_elasticsearch_too_slow_times_out_after_the_diagnostic_timeout(fake_elasticsearch):
    fake_elasticsearch.delay(3)
    report, _, took = await ops("slow", elasticsearch_url=fake_elasticsearch.url, diagnostic_timeout=1)
    assert report.results[0].summary == f"Elasticsearch: timed out after 1 s at {fake_elasticsearch.url}"
    assert took < 2


async def test_aws_endpoint_down_is_an_error_naming_the_endpoint(aws_env, unused_tcp_port):
    url = f"http://127.0.0.1:{unused_tcp_port}"
    report, failed, took = await ops("rds claude-db", aws_region=REGION, aws_endpoint_url=url, diagnostic_timeout=3)
    summary = report.results[0].summary
    assert report.status is Status.ERROR
    assert summary.startswith("AWS: EndpointConnectionError") and summary.endswith(f" at {url}")
    assert failed == ["AWS"] and took < 4


async def test_postgres_down_is_an_error_naming_the_server_without_the_password(unused_tcp_port):
    url = f"postgresql://app:s3cret-pw@127.0.0.1:{unused_tcp_port}/app"
    report, failed, took = await ops("db", database_url=url)
    assert report.results[0].summary == (
        f"PostgreSQL: ConnectionError: cannot connect: Connection refused at 127.0.0.1:{unused_tcp_port}/app"
    )
    assert "s3cret" not in json.dumps([r.summary for r in report.results])
    assert failed == ["PostgreSQL"] and took < 3


# --- the commands through the table and runner --------------------------------------------------


async def test_errors_for_the_default_app_from_chatops_yaml(fake_elasticsearch):
    fake_elasticsearch.add_docs(INDEX, [error_doc(1, 1, app="web"), error_doc(1, 2)])
    report, _, _ = await ops("errors --since 30m", elasticsearch_url=fake_elasticsearch.url,
                             sections={"elasticsearch": {"default_app": "web"}})
    assert report.results[0].title == "Errors · web · last 30m"
    assert len(report.results[0].lines) == 1


async def test_rds_without_a_name_uses_the_one_in_chatops_yaml(aws_env):
    create_db(aws_env, "alpha-db")
    create_db(aws_env, "claude-db")
    report, _, _ = await ops("rds", aws_region=REGION, aws_endpoint_url=aws_env.url,
                             sections={"aws": {"rds_instance": "claude-db"}})
    assert report.results[0].title == "RDS · claude-db"
    assert "showing" not in report.results[0].summary


async def test_db_top_runs_the_statements_view(postgres_server):
    report, _, _ = await ops("db top", database_url=postgres_server.dsn)
    assert report.results[0].title == "PostgreSQL · top statements"
    assert report.status is Status.OK and report.results[0].rows


@pytest.mark.parametrize("text, message", [
    ("db bottom", "must be one of top"),
    ("errors --since 2x", "is not a duration"),
    ("slow --min-ms 0", "between 1 and"),
    ("elb not/a/group", "is not a valid target_group"),
    ("rds 9lives", "is not a valid instance"),
])  # fmt: skip
def test_bad_arguments_are_usage_errors(text, message):
    with pytest.raises(UsageError, match=message):
        build_table(Sections()).parse(text, "default")


def test_usage_lines():
    table = build_table(Sections())
    assert [table.commands[n].usage for n in ("errors", "slow", "rds", "elb", "cache", "db", "deps")] == [
        "errors [<app>] [--since <duration>]", "slow [--min-ms <ms>] [--since <duration>]", "rds [<instance>]",
        "elb [<target-group>]", "cache [<cluster>]", "db [top]", "deps",
    ]


# --- end to end: signed slash command in, chat.postMessage out -----------------------------------


@pytest.fixture
def slash(start_bot, bot_env, http, fake_slack, signing_secret) -> Callable[..., Any]:
    async def run(text: str, env: dict[str, str]) -> str:
        bot = await start_bot({**bot_env, **env})
        await send_slash_command(http, f"http://127.0.0.1:{bot.port}/slack/events", signing_secret, text=text,
                                 response_url=fake_slack.response_url())
        await fake_slack.wait_for("chat.postMessage", timeout=10)
        (message,) = fake_slack.messages("C0OPS")
        return json.dumps(message.blocks, ensure_ascii=False) + message.text

    return run


async def test_slash_errors_posts_the_error_lines_and_endpoint_counts(slash, fake_elasticsearch):
    fake_elasticsearch.add_docs(INDEX, [error_doc(1, 1, endpoint="/v1/messages"), error_doc(2, 2)])
    text = await slash("errors", {"ELASTICSEARCH_URL": fake_elasticsearch.url})
    assert "Errors · claude-deployment-api · last 1h" in text
    assert "ERROR upstream failed #1" in text and "/v1/messages" in text
    assert ":large_yellow_circle:" in text


async def test_slash_rds_posts_the_instance_status(slash, aws_env):
    create_db(aws_env)
    rds_metrics(aws_env, cpu=[95], connections=[40])
    text = await slash("rds claude-db", {"AWS_REGION": REGION, "AWS_ENDPOINT_URL": aws_env.url})
    assert "RDS · claude-db" in text and "db.t3.medium" in text
    assert "CPU 95 % &gt; 90 %" in text and ":red_circle:" in text


async def test_slash_db_posts_connections_and_version(slash, postgres_server):
    text = await slash("db", {"DATABASE_URL": postgres_server.dsn})
    assert "PostgreSQL" in text and "% of connections in use" in text
    assert postgres_server.psql("SHOW server_version") in text


async def test_slash_deps_posts_each_dependency(slash, tmp_path, unused_tcp_port):
    config = tmp_path / "chatops.yaml"
    config.write_text(yaml.safe_dump({"dependencies": [
        {"name": "gone", "url": f"http://127.0.0.1:{unused_tcp_port}/v1/models", "timeout": 1},
    ]}))  # fmt: skip
    text = await slash("deps", {"CHATOPS_CONFIG": str(config)})
    assert "Dependencies" in text and "0/1 reachable" in text
    assert "cannot connect: Connection refused" in text and ":red_circle:" in text


PASSWORD = "Qu3ry-Secret-pw"


async def test_slash_db_with_the_password_as_a_query_parameter_shows_no_password(slash, postgres_server, caplog):
    caplog.set_level(logging.DEBUG)
    text = await slash("db", {"DATABASE_URL": f"{postgres_server.dsn}?password={PASSWORD}&sslmode=disable"})
    assert f"127.0.0.1:{postgres_server.port}/app" in text and "% of connections in use" in text
    assert PASSWORD not in text and "password" not in text
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize("up", [True, False])
async def test_terminal_db_with_the_password_as_a_query_parameter_prints_no_password(up, postgres_server,
                                                                                    unused_tcp_port):
    port = postgres_server.port if up else unused_tcp_port
    url = f"postgresql://postgres@127.0.0.1:{port}/app?password={PASSWORD}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "app.py"), "ops", "db", env={"DATABASE_URL": url, "PATH": ""}, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = (b.decode() for b in await asyncio.wait_for(proc.communicate(), 60))
    assert f"127.0.0.1:{port}/app" in out, out + err
    assert PASSWORD not in out + err
    assert proc.returncode == (0 if up else 3)


# --- a bad chatops.yaml section stops the bot at start with one line ----------------------------


@pytest.mark.parametrize("section, message", [
    ({"elasticsearch": {"index": ""}}, "elasticsearch.index: must be a non-empty string, not ''"),
    ({"elasticsearch": {"indices": "x"}}, "elasticsearch.indices: unknown key (did you mean index?)"),
    ({"elasticsearch": {"default_app": "bad app"}}, "elasticsearch.default_app: `bad app` is not a valid"),
    ({"aws": {"target_group_arn": "arn:aws:s3:::bucket"}}, "aws.target_group_arn: `arn:aws:s3:::bucket` is not"),
    ({"aws": {"rds_instance": 5}}, "aws.rds_instance: must be a non-empty string, not 5"),
    ({"dependencies": [{"name": "x", "url": "nope"}]}, "dependencies[0].url: must be an http(s) URL, not 'nope'"),
    ({"alerts": {"cooldown": 5}}, "alerts.cooldown: unknown key (did you mean cooldown_minutes?)"),
    ({"playbooks": {"DiskFull": {"step": ["nodes"]}}}, "playbooks.DiskFull.step: unknown key (did you mean steps?)"),
    ({"playbooks": {"DiskFull": {"steps": ["nodes --all"]}}},
     "playbooks.DiskFull.steps[0]: 'nodes --all': `nodes` has no option `--all`"),
    ({"delivery": {"poll_seconds": -1}}, "delivery.poll_seconds: must be a number more than 0, not -1"),
])  # fmt: skip
async def test_a_bad_section_value_stops_the_bot_with_one_line(start_bot, bot_env, tmp_path, section, message):
    config = tmp_path / "chatops.yaml"
    config.write_text(yaml.safe_dump(section))
    with pytest.raises(ConfigError) as caught:
        await start_bot({**bot_env, "CHATOPS_CONFIG": str(config)})
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"{config}: ")


async def test_the_process_exits_2_with_one_line_for_a_bad_section(tmp_path):
    config = tmp_path / "chatops.yaml"
    config.write_text(yaml.safe_dump({"aws": {"cache_cluster": "no_underscores"}}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "app.py"), "ops", "cache", env={"CHATOPS_CONFIG": str(config), "PATH": ""},
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert err.decode().strip().splitlines() == [
        f"config error: {config}: aws.cache_cluster: `no_underscores` is not a valid cache_cluster: "
        "a letter, then letters, digits and '-' (at most 50)"
    ]


def test_a_good_chatops_yaml_loads(tmp_path):
    config = tmp_path / "chatops.yaml"
    config.write_text(yaml.safe_dump({
        "elasticsearch": {"index": "logs-*", "default_app": "web"},
        "aws": {"rds_instance": "claude-db", "cache_cluster": "claude-cache",
                "target_group_arn": "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/api/0123abcd"},
        "dependencies": [{"name": "OpenAI API", "url": "https://api.openai.com/v1/models"}],
    }))  # fmt: skip
    sections = load_sections(load_settings({"CHATOPS_CONFIG": str(config)}, mode="cli"))
    assert sections.aws.rds_instance == "claude-db"
    assert sections.elasticsearch.index == "logs-*" and sections.elasticsearch.default_app == "web"
    assert [d.name for d in sections.dependencies] == ["OpenAI API"]
