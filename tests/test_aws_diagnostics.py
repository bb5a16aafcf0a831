"""The AWS diagnostics (`rds`, `elb`, `cache`) through boto3 and the bot's AWS thread pool,
against moto in server mode over HTTP.

moto's gaps, found here: describe_pending_maintenance_actions answers HTTP 500 (not
implemented); target health is never `unhealthy` (moto runs no health checks) -- a stopped
instance is `unused` (Target.InvalidState), which is the not-serving state these tests use;
ElastiCache clusters are always `available` and carry no CacheNodes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from bot.clients import Clients
from bot.settings import Settings
from diagnostics.aws import Aws, cache_status, rds_status, target_health
from diagnostics.result import Status
from tests.servers.aws import REGION

pytestmark = pytest.mark.integration


# --- seeding moto ---------------------------------------------------------------------------------


def boto(moto, service: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=moto.url)


def create_db(moto, name: str = "claude-db") -> None:
    boto(moto, "rds").create_db_instance(
        DBInstanceIdentifier=name, DBInstanceClass="db.t3.medium", Engine="postgres", EngineVersion="15.4",
        AllocatedStorage=100, StorageType="gp3", MultiAZ=True, MasterUsername="app", MasterUserPassword="pw123456",
    )  # fmt: skip


def put_metric(moto, namespace: str, metric: str, dimension: str, name: str, values: list[float]) -> None:
    """`values` oldest first, one every ten minutes, the last one a minute ago."""
    now = datetime.now(UTC)
    boto(moto, "cloudwatch").put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": metric, "Dimensions": [{"Name": dimension, "Value": name}], "Value": value,
         "Timestamp": now - timedelta(minutes=1 + 10 * (len(values) - 1 - i))}
        for i, value in enumerate(values)
    ])  # fmt: skip


def rds_metrics(moto, cpu: list[float], connections: list[float], name: str = "claude-db") -> None:
    put_metric(moto, "AWS/RDS", "CPUUtilization", "DBInstanceIdentifier", name, cpu)
    put_metric(moto, "AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier", name, connections)


def target_group(moto, instances: int = 2, name: str = "api-targets") -> tuple[str, list[str]]:
    """A target group with `instances` running EC2 instances registered: (its ARN, instance ids)."""
    ec2 = boto(moto, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ids = [i["InstanceId"] for i in ec2.run_instances(ImageId="ami-12c6146b", MinCount=instances,
                                                      MaxCount=instances)["Instances"]]
    elb = boto(moto, "elbv2")
    arn = elb.create_target_group(Name=name, Protocol="HTTP", Port=8080, VpcId=vpc,
                                  HealthCheckPath="/healthz")["TargetGroups"][0]["TargetGroupArn"]
    elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": i} for i in ids])
    return arn, ids


def create_cache(moto, name: str = "claude-cache") -> None:
    boto(moto, "elasticache").create_cache_cluster(
        CacheClusterId=name, Engine="redis", EngineVersion="7.0", CacheNodeType="cache.t3.small", NumCacheNodes=1
    )


@pytest.fixture
async def aws(aws_env) -> AsyncIterator[Aws]:
    settings = Settings(aws_region=REGION, aws_endpoint_url=aws_env.url, diagnostic_timeout=5)
    clients = await Clients.build(settings)
    yield Aws(clients.aws, clients.pool("aws").run, clients.cache)
    await clients.close()


# --- rds ------------------------------------------------------------------------------------------


async def test_rds_shows_the_runbook_fields_and_is_ok_when_available_with_normal_cpu(aws_env, aws):
    create_db(aws_env)
    rds_metrics(aws_env, cpu=[20, 30, 40], connections=[10, 12, 14])
    result = await rds_status(aws, "claude-db")
    assert result.status is Status.OK, result.summary
    assert result.title == "RDS · claude-db"
    assert result.summary == "Status available · CPU 40 %"
    f = result.fields
    assert (f["status"], f["class"], f["engine"], f["storage"], f["Multi-AZ"]) == (
        "available", "db.t3.medium", "postgres 15.4", "100 GiB gp3", "yes")
    assert f["endpoint"].startswith("claude-db.") and f["endpoint"].endswith(":5432")
    assert f["CPU"] == "latest 40.0 % · avg 30.0 % · max 40.0 % (1 h)"
    assert f["connections"] == "latest 14.0 · avg 12.0 · max 14.0 (1 h)"


async def test_rds_pending_maintenance_unavailable_from_moto_is_a_field_not_a_failure(aws_env, aws):
    create_db(aws_env)
    result = await rds_status(aws, "claude-db")
    assert result.fields["pending maintenance"].startswith("not available from this endpoint")
    assert result.status is Status.OK


async def test_rds_without_datapoints_says_so(aws_env, aws):
    create_db(aws_env)
    result = await rds_status(aws, "claude-db")
    assert result.fields["CPU"] == result.fields["connections"] == "no datapoints in the last hour"


async def test_a_stopped_rds_instance_is_critical(aws_env, aws):
    create_db(aws_env)
    boto(aws_env, "rds").stop_db_instance(DBInstanceIdentifier="claude-db")
    result = await rds_status(aws, "claude-db")
    assert result.status is Status.CRITICAL
    assert result.summary.startswith("Status stopped")


@pytest.mark.parametrize("cpu, status", [(75, Status.WARNING), (95, Status.CRITICAL), (65, Status.OK)])
async def test_rds_cpu_above_70_is_a_warning_and_above_90_critical(aws_env, aws, cpu, status):
    create_db(aws_env)
    rds_metrics(aws_env, cpu=[10, cpu], connections=[5])
    result = await rds_status(aws, "claude-db")
    assert result.status is status
    assert f"CPU {cpu} %" in result.summary


async def test_an_unknown_rds_instance_is_reported_not_found(aws_env, aws):
    result = await rds_status(aws, "nosuch")
    assert result.status is Status.UNKNOWN
    assert result.summary == "RDS instance `nosuch` not found"


def _stopped_db(moto, name: str) -> None:
    create_db(moto, name)
    boto(moto, "rds").stop_db_instance(DBInstanceIdentifier=name)


@pytest.mark.parametrize("seed, diagnostic, title, summary", [
    (create_db, rds_status, "RDS", "2 RDS instances (alpha, beta): name one, or set aws.rds_instance"),
    (create_cache, cache_status, "ElastiCache",
     "2 cache clusters (alpha, beta): name one, or set aws.cache_cluster"),
])  # fmt: skip
async def test_without_a_name_several_are_unknown_listing_them_and_the_setting(aws_env, aws, seed, diagnostic,
                                                                              title, summary):
    seed(aws_env, "alpha")
    seed(aws_env, "beta")
    result = await diagnostic(aws, None)
    assert (result.status, result.title, result.summary) == (Status.UNKNOWN, title, summary)


async def test_without_a_name_a_healthy_first_db_never_hides_a_stopped_one(aws_env, aws):
    create_db(aws_env, "alpha")
    _stopped_db(aws_env, "beta")
    result = await rds_status(aws, None)
    assert result.status is Status.UNKNOWN and "alpha, beta" in result.summary


async def test_without_a_name_the_only_one_is_shown_and_the_summary_says_so(aws_env, aws):
    _stopped_db(aws_env, "alpha")
    result = await rds_status(aws, None)
    assert (result.status, result.title) == (Status.CRITICAL, "RDS · alpha")
    assert result.summary.endswith("(no RDS instance named or set in aws.rds_instance: showing the only one)")


async def test_elb_without_a_name_and_several_groups_lists_them(aws_env, aws):
    target_group(aws_env, instances=1, name="api-targets")
    target_group(aws_env, instances=1, name="web-targets")
    result = await target_health(aws, None)
    assert (result.status, result.summary) == (Status.UNKNOWN, "2 target groups (api-targets, web-targets): "
                                               "name one, or set aws.target_group_arn or TARGET_GROUP_ARN")


async def test_without_a_name_a_long_list_is_cut_after_ten(aws_env, aws):
    for i in range(12):
        create_cache(aws_env, f"cache-{i:02}")
    result = await cache_status(aws, None)
    assert result.summary.startswith("12 cache clusters (cache-00, cache-01, ")
    assert "cache-09 and 2 more): name one" in result.summary


async def test_rds_with_no_instances_at_all_says_so(aws_env, aws):
    result = await rds_status(aws, None)
    assert result.status is Status.UNKNOWN and result.summary == "No RDS instances in this account and region"


# --- elb ------------------------------------------------------------------------------------------


async def test_elb_all_targets_healthy_is_ok(aws_env, aws):
    arn, ids = target_group(aws_env)
    result = await target_health(aws, arn)
    assert result.status is Status.OK
    assert result.title == "Target group · api-targets"
    assert result.summary == "2/2 targets healthy"
    assert sorted(r.cells[0] for r in result.rows) == sorted(f"{i}:8080" for i in ids)
    assert result.fields["health check"] == "HTTP /healthz"


async def test_elb_some_targets_not_serving_is_a_warning_with_them_first_and_the_reason(aws_env, aws):
    arn, ids = target_group(aws_env, instances=3)
    boto(aws_env, "ec2").stop_instances(InstanceIds=[ids[2]])
    result = await target_health(aws, arn)
    assert result.status is Status.WARNING
    assert result.summary == "2/3 targets healthy"
    first = result.rows[0]
    assert first.cells == (f"{ids[2]}:8080", "unused")
    assert first.detail == "Target.InvalidState: Target is in the stopped state"
    assert [r.status for r in result.rows[1:]] == [Status.OK, Status.OK]


async def test_elb_no_healthy_target_is_critical(aws_env, aws):
    arn, ids = target_group(aws_env)
    boto(aws_env, "ec2").stop_instances(InstanceIds=ids)
    result = await target_health(aws, arn)
    assert result.status is Status.CRITICAL and result.summary == "0/2 targets healthy"


async def test_elb_with_no_registered_targets_is_critical(aws_env, aws):
    arn, ids = target_group(aws_env, instances=1)
    boto(aws_env, "elbv2").deregister_targets(TargetGroupArn=arn, Targets=[{"Id": ids[0]}])
    result = await target_health(aws, arn)
    assert result.status is Status.CRITICAL and result.summary == "No targets registered"


async def test_elb_accepts_a_name_and_reports_an_unknown_one(aws_env, aws):
    target_group(aws_env)
    assert (await target_health(aws, "api-targets")).summary == "2/2 targets healthy"
    missing = await target_health(aws, "nosuch")
    assert missing.status is Status.UNKNOWN and missing.summary == "target group `nosuch` not found"


async def test_elb_without_a_name_uses_the_only_group_and_says_so(aws_env, aws):
    target_group(aws_env)
    result = await target_health(aws, None)
    assert result.title == "Target group · api-targets"
    assert "showing the only one" in result.summary and "TARGET_GROUP_ARN" in result.summary


# --- cache ----------------------------------------------------------------------------------------


async def test_cache_shows_status_engine_nodes_and_cpu(aws_env, aws):
    create_cache(aws_env)
    put_metric(aws_env, "AWS/ElastiCache", "CPUUtilization", "CacheClusterId", "claude-cache", [5, 15])
    result = await cache_status(aws, "claude-cache")
    assert result.status is Status.OK
    assert result.fields["status"] == "available"
    assert result.fields["engine"] == "redis 7.0"
    assert result.fields["node type"] == "cache.t3.small"
    assert result.fields["nodes"].startswith("1")
    assert result.fields["CPU"] == "latest 15.0 % · avg 10.0 % · max 15.0 % (1 h)"


async def test_cache_high_cpu_is_a_warning(aws_env, aws):
    create_cache(aws_env)
    put_metric(aws_env, "AWS/ElastiCache", "CPUUtilization", "CacheClusterId", "claude-cache", [80])
    result = await cache_status(aws, "claude-cache")
    assert result.status is Status.WARNING and "CPU 80 % > 70 %" in result.summary


async def test_an_unknown_cache_cluster_is_reported_not_found(aws_env, aws):
    result = await cache_status(aws, "nosuch")
    assert result.status is Status.UNKNOWN and result.summary == "cache cluster `nosuch` not found"
