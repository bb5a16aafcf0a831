"""AWS: the runbook's RDS, load balancer target group and ElastiCache checks (boto3).

boto3 blocks, so every call goes through `Aws.call`, which runs it on the caller's pool
(`BlockingPool.run`) and shares identical reads through the query cache. API errors other
than "no such resource" propagate: the caller turns them into an error Result naming AWS
and the endpoint.

Status:
* rds    CRITICAL unless the instance is `available`; CPU (latest 5-min average) above
         90 % CRITICAL, above 70 % WARNING, as the runbook's CPU thresholds.
* elb    CRITICAL when no target is healthy (or none is registered), WARNING when some are not.
* cache  as rds: CRITICAL unless `available`, then the same CPU thresholds.
* any    UNKNOWN with no name when several exist: it lists them and the setting to use.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Hashable

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from diagnostics.cache import QueryCache, cached
from diagnostics.result import Result, Row, Status

CPU_WARNING, CPU_CRITICAL = 70.0, 90.0
PERIOD = 300  # CloudWatch statistics period: 5 minutes
WINDOW = timedelta(hours=1)
LISTED = 10  # resource names listed when several exist and none is named


@dataclass
class Aws:
    """boto3 clients (`client(service)`, e.g. Clients.aws) run on a pool (`run`, e.g. BlockingPool.run)."""

    client: Callable[[str], Awaitable[Any]]
    run: Callable[..., Awaitable[Any]]
    cache: QueryCache | None = None

    async def call(self, service: str, operation: str, key: Hashable = None, **params: Any) -> dict[str, Any]:
        """One API call; `key` replaces the parameters in the cache key (e.g. when they hold times)."""
        client = await self.client(service)
        cache_key = ("aws", service, operation, key if key is not None else repr(sorted(params.items())))
        return await cached(self.cache, cache_key, lambda: self.run(getattr(client, operation), **params))


@dataclass(frozen=True)
class Metric:
    """One CloudWatch metric over the last hour, 5-minute periods."""

    latest: float | None = None
    average: float | None = None
    maximum: float | None = None

    def text(self, unit: str = "") -> str:
        if self.latest is None:
            return "no datapoints in the last hour"
        return (f"latest {self.latest:.1f}{unit} · avg {self.average:.1f}{unit} · "
                f"max {self.maximum:.1f}{unit} (1 h)")


async def last_hour(aws: Aws, namespace: str, metric: str, dimension: str, value: str) -> Metric:
    now = datetime.now(timezone.utc)
    answer = await aws.call(
        "cloudwatch", "get_metric_statistics", key=(namespace, metric, dimension, value),
        Namespace=namespace, MetricName=metric, Dimensions=[{"Name": dimension, "Value": value}],
        StartTime=now - WINDOW, EndTime=now, Period=PERIOD, Statistics=["Average", "Maximum"],
    )  # fmt: skip
    points = sorted(answer.get("Datapoints", []), key=lambda p: p["Timestamp"])
    if not points:
        return Metric()
    averages = [p["Average"] for p in points]
    return Metric(averages[-1], sum(averages) / len(averages), max(p["Maximum"] for p in points))


def cpu_status(cpu: Metric) -> tuple[Status, str]:
    if cpu.latest is None:
        return Status.OK, ""
    if cpu.latest > CPU_CRITICAL:
        return Status.CRITICAL, f"CPU {cpu.latest:.0f} % > {CPU_CRITICAL:.0f} %"
    if cpu.latest > CPU_WARNING:
        return Status.WARNING, f"CPU {cpu.latest:.0f} % > {CPU_WARNING:.0f} %"
    return Status.OK, f"CPU {cpu.latest:.0f} %"


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class Lookup:
    """How to find one resource by name, or list them all when no name is given."""

    service: str
    operation: str
    list_key: str  # the list in the answer
    name_key: str  # each item's name
    what: str  # "RDS instance"
    setting: str  # where a default name is configured
    not_found: tuple[str, ...]  # error codes that mean "no such name"


async def find(aws: Aws, lookup: Lookup, title: str, name: str | None,
               **params: Any) -> tuple[dict[str, Any], str] | Result:
    """The named resource and "", or with no name the only one and a note saying so; a Result
    when there is none, or when there are several and none is named (which one is unknown)."""
    try:
        items = (await aws.call(lookup.service, lookup.operation, **params))[lookup.list_key]
    except ClientError as e:
        if name and error_code(e) in lookup.not_found:
            return Result(status=Status.UNKNOWN, title=title, summary=f"{lookup.what} `{name}` not found")
        raise
    if not items:
        return Result(status=Status.UNKNOWN, title=title, summary=f"No {lookup.what}s in this account and region")
    if name:
        return items[0], ""
    if len(items) > 1:  # showing any one of them could show a healthy one while another is down
        names = [str(item[lookup.name_key]) for item in items]
        more = f" and {len(names) - LISTED} more" if len(names) > LISTED else ""
        listed = ", ".join(names[:LISTED]) + more
        return Result(status=Status.UNKNOWN, title=title,
                      summary=f"{len(items)} {lookup.what}s ({listed}): name one, or set {lookup.setting}")
    return items[0], f"no {lookup.what} named or set in {lookup.setting}: showing the only one"


def with_note(text: str, note: str) -> str:
    return f"{text}\n({note})" if note else text


def service_result(title: str, state: str, cpu: Metric, note: str, fields: dict[str, str]) -> Result:
    """RDS and ElastiCache alike: CRITICAL unless `available`, otherwise as the CPU says."""
    status, cpu_reason = cpu_status(cpu)
    return Result(
        status=status if state == "available" else Status.CRITICAL,
        title=title,
        summary=with_note(" · ".join(filter(None, [f"Status {state}", cpu_reason])), note),
        fields={"status": state, **fields, "CPU": cpu.text(" %")},
    )


# -- RDS -------------------------------------------------------------------------------------
RDS = Lookup("rds", "describe_db_instances", "DBInstances", "DBInstanceIdentifier", "RDS instance",
             "aws.rds_instance", ("DBInstanceNotFound", "DBInstanceNotFoundFault"))


async def rds_status(aws: Aws, instance: str | None) -> Result:
    title = f"RDS · {instance}" if instance else "RDS"
    found = await find(aws, RDS, title, instance, **({"DBInstanceIdentifier": instance} if instance else {}))
    if isinstance(found, Result):
        return found
    db, note = found
    name = db["DBInstanceIdentifier"]
    maintenance, cpu, connections = await asyncio.gather(
        pending_maintenance(aws, db.get("DBInstanceArn", "")),
        last_hour(aws, "AWS/RDS", "CPUUtilization", "DBInstanceIdentifier", name),
        last_hour(aws, "AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier", name),
    )
    endpoint = db.get("Endpoint") or {}
    return service_result(f"RDS · {name}", db.get("DBInstanceStatus", "unknown"), cpu, note, {
        "class": db.get("DBInstanceClass", "?"),
        "engine": f"{db.get('Engine', '?')} {db.get('EngineVersion', '')}".strip(),
        "storage": f"{db.get('AllocatedStorage', '?')} GiB {db.get('StorageType', '')}".strip(),
        "Multi-AZ": "yes" if db.get("MultiAZ") else "no",
        "endpoint": f"{endpoint.get('Address', '?')}:{endpoint.get('Port', '?')}" if endpoint else "none yet",
        "pending maintenance": maintenance,
        "connections": connections.text(),
    })


async def pending_maintenance(aws: Aws, arn: str) -> str:
    """The instance's pending maintenance actions; not every endpoint (moto) implements the call."""
    try:
        params: dict[str, Any] = {"Filters": [{"Name": "db-instance-id", "Values": [arn]}]} if arn else {}
        answer = await aws.call("rds", "describe_pending_maintenance_actions", **params)
    except (ClientError, BotoCoreError, ResponseParserError) as e:  # moto: HTTP 500, not implemented
        reason = error_code(e) if isinstance(e, ClientError) else type(e).__name__
        return f"not available from this endpoint ({reason})"
    actions = [
        f"{d.get('Action', '?')} ({_apply_date(d)}): {d.get('Description', '')}".rstrip(": ")
        for resource in answer.get("PendingMaintenanceActions", [])
        for d in resource.get("PendingMaintenanceActionDetails", [])
    ]
    return "; ".join(actions) or "none"


def _apply_date(detail: dict[str, Any]) -> str:
    for key, label in (("ForcedApplyDate", "forced"), ("AutoAppliedAfterDate", "auto after"),
                       ("CurrentApplyDate", "applies")):  # fmt: skip
        when = detail.get(key)
        if when:
            return f"{label} {when:%Y-%m-%d}" if isinstance(when, datetime) else f"{label} {when}"
    return "next maintenance window"


# -- ELBv2 target groups --------------------------------------------------------------------------
TARGET_GROUPS = Lookup("elbv2", "describe_target_groups", "TargetGroups", "TargetGroupName", "target group",
                       "aws.target_group_arn or TARGET_GROUP_ARN",
                       ("TargetGroupNotFound", "TargetGroupNotFoundException"))
_NOT_SERVING_CRITICAL = ("unhealthy", "unavailable")


async def target_health(aws: Aws, target_group: str | None) -> Result:
    """`target_group`: an ARN or a name."""
    # arn:aws:elasticloadbalancing:…:targetgroup/<name>/<id>
    short = target_group.split("/")[1] if target_group and target_group.startswith("arn:") else target_group
    title = f"Target group · {short}" if short else "Target group"
    params: dict[str, Any] = {}
    if target_group:
        params = {"TargetGroupArns" if target_group.startswith("arn:") else "Names": [target_group]}
    found = await find(aws, TARGET_GROUPS, title, target_group, **params)
    if isinstance(found, Result):
        return found
    group, note = found
    answer = await aws.call("elbv2", "describe_target_health", TargetGroupArn=group["TargetGroupArn"])
    rows = [_target_row(d) for d in answer.get("TargetHealthDescriptions", [])]
    rows.sort(key=lambda r: -r.status.rank)  # not serving first
    healthy = sum(r.status is Status.OK for r in rows)
    if not rows:
        status, text = Status.CRITICAL, "No targets registered"
    else:
        status = Status.CRITICAL if healthy == 0 else Status.WARNING if healthy < len(rows) else Status.OK
        text = f"{healthy}/{len(rows)} targets healthy"
    check = f"{group.get('HealthCheckProtocol', '')} {group.get('HealthCheckPath', '')}".strip()
    return Result(
        status=status,
        title=f"Target group · {group['TargetGroupName']}",
        summary=with_note(text, note),
        fields={"protocol": f"{group.get('Protocol', '?')}:{group.get('Port', '?')}",
                "health check": check or "?"},
        columns=("target", "state"),
        rows=rows,
    )


def _target_row(description: dict[str, Any]) -> Row:
    target, health = description.get("Target", {}), description.get("TargetHealth", {})
    state = health.get("State", "unknown")
    name = f"{target.get('Id', '?')}:{target['Port']}" if target.get("Port") else str(target.get("Id", "?"))
    if state == "healthy":
        return Row((name, state))
    detail = ": ".join(filter(None, [health.get("Reason", ""), health.get("Description", "")])) or state
    return Row((name, state), Status.CRITICAL if state in _NOT_SERVING_CRITICAL else Status.WARNING, detail)


# -- ElastiCache ----------------------------------------------------------------------------------
CACHE_CLUSTERS = Lookup("elasticache", "describe_cache_clusters", "CacheClusters", "CacheClusterId",
                        "cache cluster",
                        "aws.cache_cluster", ("CacheClusterNotFound", "CacheClusterNotFoundFault"))


async def cache_status(aws: Aws, cluster: str | None) -> Result:
    title = f"ElastiCache · {cluster}" if cluster else "ElastiCache"
    found = await find(aws, CACHE_CLUSTERS, title, cluster, ShowCacheNodeInfo=True,
                       **({"CacheClusterId": cluster} if cluster else {}))
    if isinstance(found, Result):
        return found
    group, note = found
    name = group["CacheClusterId"]
    cpu = await last_hour(aws, "AWS/ElastiCache", "CPUUtilization", "CacheClusterId", name)
    nodes = group.get("CacheNodes") or []
    node_states = ", ".join(f"{n.get('CacheNodeId', '?')} {n.get('CacheNodeStatus', '?')}" for n in nodes)
    return service_result(f"ElastiCache · {name}", group.get("CacheClusterStatus", "unknown"), cpu, note, {
        "engine": f"{group.get('Engine', '?')} {group.get('EngineVersion', '')}".strip(),
        "node type": group.get("CacheNodeType", "?"),
        "nodes": f"{group.get('NumCacheNodes', len(nodes))}" + (f" ({node_states})" if node_states else ""),
    })
