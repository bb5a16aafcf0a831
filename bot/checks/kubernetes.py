"""Kubernetes checks (kubernetes.aio): pods, deploy, events, nodes, logs, top, config."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from bot.checks.common import NAMESPACE, Check, run_checks
from bot.commands.args import choice, duration, integer, k8s_name
from bot.commands.model import Arg, Args, Command, Context
from bot.commands.report import Report
from bot.errors import UsageError
from diagnostics.result import Result

DEPLOYMENT = Arg("deployment", "deployment name", convert=k8s_name)

# kubectl's names for the kinds `events --for` understands -> the Kind events carry.
KINDS = {
    **dict.fromkeys(("deployment", "deployments", "deploy"), "Deployment"),
    **dict.fromkeys(("replicaset", "replicasets", "rs"), "ReplicaSet"),
    **dict.fromkeys(("pod", "pods", "po"), "Pod"),
    **dict.fromkeys(("node", "nodes", "no"), "Node"),
    **dict.fromkeys(("statefulset", "statefulsets", "sts"), "StatefulSet"),
    **dict.fromkeys(("daemonset", "daemonsets", "ds"), "DaemonSet"),
    **dict.fromkeys(("job", "jobs"), "Job"),
    **dict.fromkeys(("cronjob", "cronjobs", "cj"), "CronJob"),
    **dict.fromkeys(("service", "services", "svc"), "Service"),
    **dict.fromkeys(("horizontalpodautoscaler", "hpa"), "HorizontalPodAutoscaler"),
    **dict.fromkeys(("persistentvolumeclaim", "pvc"), "PersistentVolumeClaim"),
    **dict.fromkeys(("configmap", "configmaps", "cm"), "ConfigMap"),
    **dict.fromkeys(("ingress", "ingresses", "ing"), "Ingress"),
}


# ---------------------------------------------------------------------------------------
# Argument converters
# ---------------------------------------------------------------------------------------


def involved_object(value: str, what: str) -> tuple[str, str]:
    """`deployment/checkout`, `po/x` -> ("Deployment", "checkout"), ("Pod", "x")."""
    kind, slash, name = value.partition("/")
    if not slash or not kind or not name:
        raise UsageError(f"{what} `{value}` needs kind/name, e.g. deployment/checkout or pod/checkout-x2x9q")
    if kind.lower() not in KINDS:
        raise UsageError(f"{what}: unknown kind `{kind}` (e.g. deployment, pod, replicaset, node, job)")
    return KINDS[kind.lower()], k8s_name(name, KINDS[kind.lower()])


def workload(value: str, what: str) -> tuple[str | None, str]:
    """`checkout`, `deploy/checkout`, `pod/checkout-x` -> (None | "deployment" | "pod", name)."""
    kind, slash, name = value.partition("/")
    if not slash:
        return None, k8s_name(value, "deployment or pod")
    if KINDS.get(kind.lower()) not in ("Deployment", "Pod"):
        raise UsageError(f"{what}: `{kind}/` is neither deployment/ nor pod/")
    resolved = KINDS[kind.lower()].lower()
    return resolved, k8s_name(name, resolved)


def configmap_name(value: str, what: str) -> str:
    """A ConfigMap's name (optionally `configmap/` or `cm/`); a Secret is refused, never read."""
    kind, slash, name = value.partition("/")
    if slash and kind.lower() in ("secret", "secrets"):
        raise UsageError("`config` shows ConfigMaps only: Secrets are never read by this bot.")
    if slash and KINDS.get(kind.lower()) != "ConfigMap":
        raise UsageError(f"`{value}`: `config` shows ConfigMaps (a name, or configmap/<name>)")
    return k8s_name(name if slash else value, "ConfigMap")


def grep_text(value: str, what: str) -> str:
    if not value.strip():
        raise UsageError(f"{what} needs some text to look for")
    if len(value) > 200:
        raise UsageError(f"{what} is longer than 200 characters")
    return value


# ---------------------------------------------------------------------------------------
# Runners
# ---------------------------------------------------------------------------------------


async def _report(ctx: Context, title: str, diagnostic: Callable[..., Awaitable[Result]], *args: Any,
                  **kwargs: Any) -> Report:
    """Run one Kubernetes diagnostic with the bot's client, timeout and query cache."""
    timeout = ctx.settings.diagnostic_timeout
    check = Check(
        title,
        "kubernetes",
        lambda: diagnostic(ctx.clients.kubernetes, *args, timeout=timeout, cache=ctx.clients.cache, **kwargs),
        # The diagnostic times out its own API calls; this outer bound catches anything else.
        timeout=timeout + 1,
    )
    return Report(title=title, results=await run_checks(ctx, [check]))


async def pods(ctx: Context, args: Args) -> Report:
    from diagnostics.kubernetes import pod_status

    deployment, namespace = str(args["deployment"]), str(args["namespace"])
    return await _report(ctx, f"Pods · {deployment} ({namespace})", pod_status, deployment, namespace)


async def deploy(ctx: Context, args: Args) -> Report:
    from diagnostics.kubernetes import deployment_rollout

    deployment, namespace = str(args["deployment"]), str(args["namespace"])
    title = f"Deployment · {deployment} ({namespace})"
    return await _report(ctx, title, deployment_rollout, deployment, namespace)


async def events(ctx: Context, args: Args) -> Report:
    from diagnostics.kubernetes import recent_events

    namespace, involved = str(args["namespace"]), args["for"]
    if isinstance(involved, tuple):
        title = f"Events · {involved[0].lower()}/{involved[1]} ({namespace})"
    else:
        title = f"Events · {namespace}"
    return await _report(ctx, title, recent_events, namespace, involved=involved)


async def nodes(ctx: Context, args: Args) -> Report:
    from diagnostics.kubernetes import node_status

    return await _report(ctx, "Nodes", node_status)


async def logs(ctx: Context, args: Args) -> Report:
    from diagnostics.kubernetes import LogQuery, workload_logs

    kind, name = args["name"]
    namespace = str(args["namespace"])
    query = LogQuery(
        since_seconds=args["since"], grep=args["grep"], tail=args["tail"],
        previous=bool(args["previous"]), container=args["container"],
    )
    title = f"Logs{' (previous)' if query.previous else ''} · {name} ({namespace})"
    return await _report(ctx, title, workload_logs, name, namespace, query, kind=kind)


async def top(ctx: Context, args: Args) -> Report:
    from diagnostics.kubernetes import pod_usage

    namespace = str(args["namespace"])
    return await _report(ctx, f"Top · {namespace}", pod_usage, namespace, sort=str(args["sort"]))


async def config(ctx: Context, args: Args) -> Report:
    from diagnostics.kubernetes import configmap_contents

    name, namespace = str(args["configmap"]), str(args["namespace"])
    return await _report(ctx, f"ConfigMap · {name} ({namespace})", configmap_contents, name, namespace)


COMMANDS = [
    Command(
        "pods",
        "Deployment replicas and each pod's phase, readiness, restarts and why it is unhealthy",
        (DEPLOYMENT, NAMESPACE),
        run=pods,
        backend="kubernetes",
        example="pods checkout -n prod",
    ),
    Command(
        "deploy",
        "Rollout status (complete, progressing, stalled), replicas, images, revision, last rollout "
        "and conditions",
        (DEPLOYMENT, NAMESPACE),
        run=deploy,
        backend="kubernetes",
        example="deploy checkout -n prod",
    ),
    Command(
        "events",
        "Recent events, warnings first, repeats folded with their counts; --for deployment/x also "
        "includes its ReplicaSets and pods (by name prefix x-)",
        (NAMESPACE,
         Arg("for", "only events about this object (kind/name)", flags=("--for",), required=False,
             convert=involved_object, metavar="kind/name")),
        run=events,
        backend="kubernetes",
        example="events -n prod --for deployment/checkout",
    ),
    Command(
        "nodes",
        "Each node's readiness, memory/disk/PID pressure, cordon, roles, age and kubelet version",
        (),
        run=nodes,
        backend="kubernetes",
        example="nodes",
    ),
    Command(
        "logs",
        "Logs of a deployment's pods merged by time (or of one pod); --grep keeps lines containing "
        "the text (any case, not a regex); --tail the newest N lines (default 100); long logs come as a file",
        (Arg("name", "deployment or pod (deploy/x, pod/x to say which)", convert=workload,
             metavar="deployment|pod"),
         NAMESPACE,
         Arg("container", "container (default: the pod's default container)", flags=("-c", "--container"),
             required=False, convert=k8s_name),
         Arg("since", "only lines newer than this (e.g. 10m, 1h)", flags=("--since",), required=False,
             convert=duration, metavar="duration"),
         Arg("grep", "keep lines containing this text (case-insensitive substring)", flags=("--grep",),
             required=False, convert=grep_text, metavar="text"),
         Arg("tail", "the newest N lines", flags=("--tail",), required=False, convert=integer(1, 5000),
             metavar="lines"),
         Arg("previous", "the previous (crashed) container's log", flags=("--previous", "-p"), required=False,
             kind="switch")),
        run=logs,
        backend="kubernetes",
        example="logs checkout -n prod --since 10m --grep error",
    ),
    Command(
        "top",
        "Pods' CPU and memory use (metrics-server) against their requests and limits; "
        "over 80% of a limit warns, over 95% of a memory limit is critical",
        (NAMESPACE,
         Arg("sort", "sort by cpu or memory use (default memory)", flags=("--sort",), required=False,
             convert=choice("cpu", "memory"), metavar="cpu|memory", default="memory")),
        run=top,
        backend="kubernetes",
        example="top -n prod --sort cpu",
    ),
    Command(
        "config",
        "A ConfigMap's keys and values (cut to one line each; binary keys with sizes). Never reads Secrets",
        (Arg("configmap", "ConfigMap name", convert=configmap_name), NAMESPACE),
        run=config,
        backend="kubernetes",
        example="config checkout-config -n prod",
    ),
]
