"""Kubernetes checks (kubernetes.aio): pods, …"""

from __future__ import annotations

from bot.args import k8s_name
from bot.checks.common import NAMESPACE, Check, run_checks
from bot.commands import Arg, Command, Context
from bot.report import Report


async def pods(ctx: Context, args: dict[str, object]) -> Report:
    from diagnostics.kubernetes import pod_status

    deployment, namespace = str(args["deployment"]), str(args["namespace"])
    timeout = ctx.settings.diagnostic_timeout
    title = f"Pods · {deployment} ({namespace})"
    check = Check(
        title,
        "kubernetes",
        lambda: pod_status(ctx.clients.kubernetes, deployment, namespace, timeout=timeout, cache=ctx.clients.cache),
        # The diagnostic times out its own API calls; this outer bound catches anything else.
        timeout=timeout + 1,
    )
    return Report(title=title, results=await run_checks(ctx, [check]))


COMMANDS = [
    Command(
        "pods",
        "Deployment replicas and each pod's phase, readiness, restarts and why it is unhealthy",
        (Arg("deployment", "deployment name", convert=k8s_name), NAMESPACE),
        run=pods,
        backend="kubernetes",
        example="pods checkout -n prod",
    ),
]
