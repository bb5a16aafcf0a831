"""Each server fixture really comes up and answers real clients over loopback HTTP/TCP."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import boto3
import elasticsearch
import pytest
from elasticsearch import AsyncElasticsearch
from prometheus_api_client import PrometheusConnect

from tests.plugins.servers import StartPrometheus
from tests.servers.alertmanager import AlertmanagerServer, post_alerts
from tests.servers.aws import MotoServer
from tests.servers.elasticsearch import FakeElasticsearch as Fake
from tests.servers.elasticsearch import Source as Doc
from tests.servers.metrics_exporter import MetricsExporter
from tests.servers.missing import require_binary, server_missing
from tests.servers.postgres import PostgresServer
from tests.servers.process import wait_until
from tests.servers.prometheus import PrometheusServer
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.integration


# -- the missing-server rule ------------------------------------------------------------------
def test_missing_binary_skips_on_a_laptop_naming_the_install_script(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    expected = "no-such-server not found: run scripts/install-system-deps"
    with pytest.raises(pytest.skip.Exception, match=expected):
        require_binary("no-such-server", package="no-such-package")


def test_missing_server_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="prometheus not found"):
        server_missing("prometheus not found: run scripts/install-system-deps")


# -- Prometheus and the metrics exporter --------------------------------------------------------
def test_prometheus_scrapes_exporter_and_query_returns_the_value_set(
    prometheus_factory: StartPrometheus, metrics_exporter: MetricsExporter
) -> None:
    labels = {"status": "500", "service": "checkout"}
    metrics_exporter.set("http_requests_total", 100, labels=labels)
    metrics_exporter.observe("http_request_duration_seconds", 0.7, labels={"handler": "/api/orders"})
    with prometheus_factory([metrics_exporter.scrape_config("claude-deployment-api")]) as prom:
        client = PrometheusConnect(url=prom.url, disable_ssl=True)
        # The first scrape lands ~5 s after start (discovery batches target updates): poll, bounded.
        result = wait_until(
            lambda: client.custom_query("http_requests_total"), timeout=20, what="first scrape", interval=0.2
        )
        assert result[0]["value"][1] == "100"
        assert result[0]["metric"] == {
            "__name__": "http_requests_total", "job": "claude-deployment-api",
            "instance": metrics_exporter.target, **labels,
        }  # fmt: skip
        inf_bucket = client.custom_query('http_request_duration_seconds_bucket{le="+Inf"}')
        assert inf_bucket[0]["value"][1] == "1"
        assert client.custom_query('up{job="claude-deployment-api"}')[0]["value"][1] == "1"


def test_prometheus_fixture_is_ready_and_hot_reloads_rule_files(prometheus: PrometheusServer) -> None:
    assert prometheus.query("vector(42)")[0]["value"][1] == "42"
    rules = "groups:\n- name: critical\n  rules:\n  - alert: AlwaysFiring\n    expr: vector(1)\n"
    prometheus.reconfigure(rule_files={"critical.yml": rules})
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/rules", timeout=5) as response:
        groups = json.load(response)["data"]["groups"]
    assert [rule["name"] for rule in groups[0]["rules"]] == ["AlwaysFiring"]


async def test_metrics_exporter_serves_text_format_and_can_fail(metrics_exporter: MetricsExporter) -> None:
    metrics_exporter.inc("http_requests_total", 3, labels={"status": "200", "path": 'a"b'})
    metrics_exporter.set("node_memory_MemAvailable_bytes", 2.5e9)
    metrics_exporter.set("gone", 1)
    metrics_exporter.remove("gone")
    async with aiohttp.ClientSession() as http:
        async with http.get(metrics_exporter.url) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await response.text()
        metrics_exporter.fail_with(503)
        async with http.get(metrics_exporter.url) as failed:
            assert failed.status == 503
    assert "# TYPE http_requests_total counter" in text
    assert 'http_requests_total{path="a\\"b",status="200"} 3.0' in text
    assert "node_memory_MemAvailable_bytes 2.5e+09" in text
    assert "gone" not in text


# -- Alertmanager -------------------------------------------------------------------------------
async def test_alertmanager_lists_an_alert_posted_through_api_v2(alertmanager: AlertmanagerServer) -> None:
    post_alerts(alertmanager.url, [{
        "labels": {"alertname": "HighErrorRate", "severity": "critical", "service": "checkout"},
        "annotations": {"description": "Error rate is 7.5% for the last 5 minutes"},
    }])  # fmt: skip
    async with aiohttp.ClientSession(alertmanager.url) as http:
        async with http.get("/api/v2/status") as response:
            status = await response.json()
        async with http.get("/api/v2/alerts") as response:
            alerts = await response.json()
    assert status["cluster"]["status"] == "disabled"
    assert [alert["labels"]["alertname"] for alert in alerts] == ["HighErrorRate"]
    assert alerts[0]["status"]["state"] == "active"


# -- AWS on moto --------------------------------------------------------------------------------
def _create_db(rds: Any, name: str) -> None:
    rds.create_db_instance(
        DBInstanceIdentifier=name, DBInstanceClass="db.t3.micro", Engine="postgres",
        MasterUsername="app", MasterUserPassword="secret-password", AllocatedStorage=20,
    )  # fmt: skip


def test_boto3_creates_and_describes_an_rds_instance_on_moto(aws_env: MotoServer) -> None:
    rds = boto3.client("rds")  # endpoint, region and credentials all come from aws_env's variables
    _create_db(rds, "claude-deployment-db")
    [instance] = rds.describe_db_instances(DBInstanceIdentifier="claude-deployment-db")["DBInstances"]
    assert instance["Engine"] == "postgres"
    assert instance["DBInstanceArn"].startswith("arn:aws:rds:us-west-2:")


def test_moto_reset_forgets_created_resources(aws_env: MotoServer) -> None:
    rds = boto3.client("rds")
    _create_db(rds, "short-lived")
    aws_env.reset()
    assert rds.describe_db_instances()["DBInstances"] == []


# -- Redis and PostgreSQL -----------------------------------------------------------------------
def test_redis_answers_ping_over_raw_resp(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.command("PING") == b"+PONG"
    assert redis_server.command("SET", "deploy:lock", "alice") == b"+OK"


def test_postgres_answers_select_and_has_pg_stat_statements(postgres_server: PostgresServer) -> None:
    assert postgres_server.psql("SELECT 1") == "1"
    assert postgres_server.psql("SHOW shared_preload_libraries") == "pg_stat_statements"
    assert postgres_server.psql("SELECT extname FROM pg_extension WHERE extname = 'pg_stat_statements'")
    # PostgreSQL 13+ renamed total_time/mean_time to total_exec_time/mean_exec_time.
    assert int(postgres_server.psql("SELECT count(*) FROM pg_stat_statements WHERE total_exec_time >= 0")) > 0
    # The DSN itself is usable as-is by a client.
    done = subprocess.run(
        [postgres_server.psql_path, "-X", "-At", postgres_server.dsn, "-c", "SELECT current_database()"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "app"


# -- Elasticsearch (fake) -----------------------------------------------------------------------
API = "claude-deployment-api"


def _log(minutes_ago: float, level: str, endpoint: str, app: str = API, **extra: Any) -> Doc:
    timestamp = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()
    return {
        "@timestamp": timestamp, "level": level, "endpoint": endpoint, "log": f"{level} {endpoint} failed",
        "kubernetes": {"labels": {"app": app}, "namespace_name": "claude-deployment-prod"}, **extra,
    }  # fmt: skip


async def test_elasticsearch_client_reads_cluster_info_and_health(fake_elasticsearch: Fake) -> None:
    fake_elasticsearch.set_health("red")
    async with AsyncElasticsearch(fake_elasticsearch.url) as client:
        info = await client.info()
        health = await client.cluster.health()
    assert info["version"]["number"].startswith("9.")
    assert health["status"] == "red"


async def test_elasticsearch_search_matches_ranges_sorts_and_aggregates(fake_elasticsearch: Fake) -> None:
    fake_elasticsearch.add_docs("claude-deployment-logs-2026.11.25", [
        _log(5, "ERROR", "/api/orders"),
        _log(10, "ERROR", "/api/orders"),
        _log(20, "ERROR", "/api/payments"),
        _log(30, "INFO", "/api/orders"),
        _log(90, "ERROR", "/api/orders"),  # outside now-1h
        _log(1, "ERROR", "/login", app="claude-deployment-web"),
    ])  # fmt: skip
    fake_elasticsearch.add_docs("other-index", [_log(1, "ERROR", "/api/orders")])
    async with AsyncElasticsearch(fake_elasticsearch.url) as client:
        response = await client.search(
            index="claude-deployment-logs-*",
            query={"bool": {"must": [
                {"match": {"kubernetes.labels.app": "claude-deployment-api"}},
                {"match": {"log": "error"}},
                {"range": {"@timestamp": {"gte": "now-1h"}}},
            ]}},
            sort=[{"@timestamp": {"order": "desc"}}],
            size=2,
            aggs={"error_endpoints": {"terms": {"field": "endpoint.keyword", "size": 10}}},
        )  # fmt: skip
    assert response["hits"]["total"]["value"] == 3
    assert [hit["_source"]["endpoint"] for hit in response["hits"]["hits"]] == ["/api/orders", "/api/orders"]
    assert response["hits"]["hits"][0]["_index"] == "claude-deployment-logs-2026.11.25"
    newest, second = (hit["_source"]["@timestamp"] for hit in response["hits"]["hits"])
    assert newest > second
    assert response["aggregations"]["error_endpoints"]["buckets"] == [
        {"key": "/api/orders", "doc_count": 2},
        {"key": "/api/payments", "doc_count": 1},
    ]


async def test_elasticsearch_pattern_matching_no_index_is_200_with_zero_shards(
    fake_elasticsearch: Fake,
) -> None:
    """As real ES: a wildcard that matches nothing is not an error; `_shards.total` 0 tells it apart."""
    fake_elasticsearch.add_docs("other-index", [_log(1, "ERROR", "/api/orders")])
    async with AsyncElasticsearch(fake_elasticsearch.url) as client:
        nothing = await client.search(index="claude-deployment-logs-*", query={"match_all": {}})
        something = await client.search(index="other-*", query={"match_all": {}})
        count = await client.count(index="claude-deployment-logs-*")
    assert nothing["_shards"]["total"] == 0 and nothing["hits"]["total"]["value"] == 0
    assert something["_shards"]["total"] == 1 and something["hits"]["total"]["value"] == 1
    assert count["_shards"]["total"] == 0 and count["count"] == 0


async def test_elasticsearch_numeric_range_sorts_slow_requests_first(fake_elasticsearch: Fake) -> None:
    fake_elasticsearch.add_docs("claude-deployment-logs-2026.11.25", [
        _log(1, "INFO", "/a", response_time=1200), _log(1, "INFO", "/b", response_time=300),
        _log(1, "INFO", "/c", response_time=4000),
    ])  # fmt: skip
    async with AsyncElasticsearch(fake_elasticsearch.url) as client:
        response = await client.search(
            index="claude-deployment-logs-*",
            query={"bool": {"must": [{"range": {"response_time": {"gte": 1000}}}]}},
            sort=[{"response_time": {"order": "desc"}}],
        )
    assert [hit["_source"]["endpoint"] for hit in response["hits"]["hits"]] == ["/c", "/a"]


async def test_elasticsearch_client_raises_when_the_fake_fails_with_503(fake_elasticsearch: Fake) -> None:
    fake_elasticsearch.fail_with(503)
    async with AsyncElasticsearch(fake_elasticsearch.url) as client:
        with pytest.raises(elasticsearch.ApiError) as caught:
            await client.cluster.health()
    assert caught.value.meta.status == 503
    assert len(fake_elasticsearch.requests) == 4  # the client retries a 503 three times by default


async def test_elasticsearch_unsupported_query_is_a_400_not_a_silent_match(
    fake_elasticsearch: Fake,
) -> None:
    async with AsyncElasticsearch(fake_elasticsearch.url) as client:
        with pytest.raises(elasticsearch.BadRequestError):
            await client.search(index="*", query={"fuzzy": {"log": "eror"}})


async def test_elasticsearch_delay_makes_the_client_time_out(fake_elasticsearch: Fake) -> None:
    fake_elasticsearch.delay(0.5)
    async with AsyncElasticsearch(fake_elasticsearch.url, request_timeout=0.1, max_retries=0) as client:
        with pytest.raises(elasticsearch.ConnectionTimeout):
            await client.info()
