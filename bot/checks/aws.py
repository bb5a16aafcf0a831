"""AWS checks (boto3, run off the event loop): `rds`, `elb`, `cache`.

Each takes an optional name; without one it uses chatops.yaml's default, and with none
configured it shows the only resource there is and says so (several: UNKNOWN, listing them).
chatops.yaml, all optional:

    aws:
      rds_instance: claude-db
      target_group_arn: arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/api/0123456789abcdef
      cache_cluster: claude-cache

The target group may also come from the TARGET_GROUP_ARN variable, as in the runbook.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from bot.checks.common import Check, run_checks
from bot.commands.model import Arg, Args, Command, Context
from bot.commands.report import Report
from bot.errors import UsageError
from bot.sections import DEFAULT_FILE, Where, argument, key, read

if TYPE_CHECKING:
    from diagnostics.aws import Aws
    from diagnostics.result import Result


def _name(pattern: str, rule: str) -> Callable[[str, str], str]:
    compiled = re.compile(pattern)

    def convert(value: str, what: str) -> str:
        if not compiled.match(value):
            raise UsageError(f"`{value}` is not a valid {what}: {rule}")
        return value

    return convert


rds_instance = _name(r"^[A-Za-z][A-Za-z0-9-]{0,62}$", "a letter, then letters, digits and '-' (at most 63)")
cache_cluster = _name(r"^[A-Za-z][A-Za-z0-9-]{0,49}$", "a letter, then letters, digits and '-' (at most 50)")
target_group = _name(
    r"^(arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]+"
    r"|[A-Za-z0-9-]{1,32})$",
    "a target group ARN (arn:aws:elasticloadbalancing:…:targetgroup/name/id) or name",
)


@dataclass(frozen=True)
class AwsDefaults:
    """The `aws:` section: the names `rds`, `elb` and `cache` use when given none ("": not set).

    Each is checked as the command's own argument is, so a name the command would refuse
    cannot be configured.
    """

    rds_instance: str = key(argument(rds_instance), "")
    target_group_arn: str = key(argument(target_group), "")
    cache_cluster: str = key(argument(cache_cluster), "")


def load(raw: Any, file: str = DEFAULT_FILE) -> AwsDefaults:
    """chatops.yaml `aws:`. Raises ConfigError (one line)."""
    return read(AwsDefaults, raw, Where(file, "aws"), absent_ok=True)


async def rds(defaults: AwsDefaults, ctx: Context, args: Args) -> Report:
    from diagnostics.aws import rds_status

    return await _run(ctx, "RDS", rds_status, args["instance"] or defaults.rds_instance)


async def elb(defaults: AwsDefaults, ctx: Context, args: Args) -> Report:
    from diagnostics.aws import target_health

    # TARGET_GROUP_ARN, as the runbook exports it, when chatops.yaml names none.
    return await _run(ctx, "Target group", target_health,
                      args["target_group"] or defaults.target_group_arn or ctx.settings.target_group_arn)


async def cache(defaults: AwsDefaults, ctx: Context, args: Args) -> Report:
    from diagnostics.aws import cache_status

    return await _run(ctx, "ElastiCache", cache_status, args["cluster"] or defaults.cache_cluster)


async def _run(ctx: Context, what: str, diagnostic: "Callable[[Aws, str | None], Awaitable[Result]]",
               name: object) -> Report:
    from diagnostics.aws import Aws

    aws = Aws(ctx.clients.aws, ctx.clients.pool("aws").run, ctx.clients.cache)
    title = f"{what} · {name}" if name else what
    check = Check(title, "aws", lambda: diagnostic(aws, str(name) if name else None))
    return Report(title=title, results=await run_checks(ctx, [check]))


def commands(defaults: AwsDefaults) -> list[Command]:
    """`rds`, `elb` and `cache`, for the `aws:` section given."""
    return [
        Command(
            "rds",
            "RDS instance status, class, engine, storage, Multi-AZ, pending maintenance, CPU and connections",
            (Arg("instance", "DB instance identifier (default: aws.rds_instance)", required=False,
                 convert=rds_instance),),
            run=partial(rds, defaults),
            backend="aws",
            example="rds claude-db",
        ),
        Command(
            "elb",
            "Load balancer target group health, unhealthy targets first with the reason",
            (Arg("target_group", "target group ARN or name (default: aws.target_group_arn or TARGET_GROUP_ARN)",
                 required=False, convert=target_group, metavar="target-group"),),
            run=partial(elb, defaults),
            backend="aws",
            example="elb api-targets",
        ),
        Command(
            "cache",
            "ElastiCache cluster status, engine, nodes and CPU",
            (Arg("cluster", "cache cluster id (default: aws.cache_cluster)", required=False, convert=cache_cluster),),
            run=partial(cache, defaults),
            backend="aws",
            example="cache claude-cache",
        ),
    ]
