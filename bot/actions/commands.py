"""The /ops commands that change production, and `/ops audit`.

None of them changes anything by itself: each becomes an approval request (bot.actions.approvals)
that an authorised person approves with a button. Their arguments are checked here, before
anything is previewed: a mistyped or out-of-range argument is answered with the usage, as for
every command. The spec each one asks for is built by `spec_for` from the parsed arguments, the
requester and the time, and stored with the request: nothing a click carries changes it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from bot.checks.common import NAMESPACE
from bot.commands.args import duration, integer, k8s_name
from bot.commands.model import Arg, Args, Command
from bot.errors import UsageError
from operations.model import Breaker, Limits, Restart, Scale, Silence, Spec, Unsilence
from operations.quantity import parse_quantity
from operations.silences import SILENCE_ID

DEPLOYMENT = Arg("deployment", "Deployment name", convert=k8s_name)
MAX_REPLICAS = 1000  # a hard ceiling for the argument; the policy's max_replicas is usually far lower


def _quantity(kind: str) -> Callable[[str, str], str]:
    def convert(value: str, what: str) -> str:
        try:
            amount = parse_quantity(value)
        except ValueError as e:
            raise UsageError(f"{what} `{value}`: {e}") from None
        if amount <= 0:
            raise UsageError(f"{what} must be more than 0, not `{value}`")
        return value

    return convert


def on_off(value: str, what: str) -> bool:
    if value.lower() in ("on", "true", "enable", "enabled"):
        return True
    if value.lower() in ("off", "false", "disable", "disabled"):
        return False
    raise UsageError(f"{what} must be `on` or `off`, not `{value}`")


_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def matchers(value: str, what: str) -> tuple[tuple[str, str], ...]:
    """`service=checkout env=prod` -> (("service", "checkout"), ("env", "prod")): equality only."""
    out = []
    for word in value.split():
        name, eq, text = word.partition("=")
        if not eq or not _LABEL_NAME.match(name) or not text or text.startswith(("=", "~")):
            raise UsageError(f"`{word}` is not a label matcher: use label=value (equality only)")
        out.append((name, text.strip('"')))
    return tuple(out)


def silence_id(value: str, what: str) -> str:
    if not SILENCE_ID.fullmatch(value):
        raise UsageError(f"`{value}` is not a silence ID (a UUID, as `alerts` and Alertmanager show it)")
    return value.lower()


def alertname(value: str, what: str) -> str:
    if not value or len(value) > 200 or any(c in value for c in "\"{}\n"):
        raise UsageError(f"`{value[:40]}` is not an alert name")
    return value


COMMANDS: tuple[Command, ...] = (
    Command("scale", "Ask to scale a Deployment (needs an approval)", (
        DEPLOYMENT, Arg("replicas", "replica count", convert=integer(0, MAX_REPLICAS)), NAMESPACE),
        run=None, backend="kubernetes", mutating=True, example="scale checkout 8 -n prod"),
    Command("restart", "Ask for a rollout restart of a Deployment (needs an approval)", (DEPLOYMENT, NAMESPACE),
            run=None, backend="kubernetes", mutating=True, example="restart checkout -n prod"),
    Command("limits", "Ask to change a container's resource limits (needs an approval)", (
        DEPLOYMENT, Arg("container", "container name (may be left out when the pod has one)",
                        flags=("-c", "--container"), required=False, convert=k8s_name),
        Arg("memory", "memory limit, e.g. 6Gi", flags=("--memory",), required=False, convert=_quantity("memory"),
            metavar="qty"),
        Arg("cpu", "CPU limit, e.g. 2000m", flags=("--cpu",), required=False, convert=_quantity("cpu"), metavar="qty"),
        NAMESPACE), run=None, backend="kubernetes", mutating=True, example="limits checkout --memory 6Gi -n prod"),
    Command("breaker", "Ask to turn the circuit breaker on or off (needs an approval)", (
        Arg("state", "on or off", convert=on_off, metavar="on|off"), NAMESPACE),
        run=None, backend="kubernetes", mutating=True, example="breaker on -n prod"),
    Command("silence", "Ask to silence an alert in Alertmanager (needs an approval)", (
        Arg("alertname", "the alert's name", convert=alertname),
        Arg("matchers", "more label matchers", required=False, kind="rest", convert=matchers, metavar="label=value",
            default=()),
        Arg("for", "how long, e.g. 1h", flags=("--for",), convert=duration, metavar="duration"),
        Arg("comment", "why", flags=("--comment",), required=False, metavar="text", default="")),
        run=None, backend="alertmanager", mutating=True, example="silence HighErrorRate service=checkout --for 1h"),
    Command("unsilence", "Ask to expire an Alertmanager silence (needs an approval)", (
        Arg("silence", "the silence's ID", convert=silence_id, metavar="silence-id"),),
        run=None, backend="alertmanager", mutating=True, example="unsilence 0f9f1e9e-…"),
)


@dataclass(frozen=True)
class Requester:
    user_id: str
    name: str


def spec_for(command: str, args: Args, requester: Requester, request_id: str, now: float,
             breaker: tuple[str, str]) -> Spec:
    """The change a parsed mutating command asks for. `breaker`: (configmap, key) from chatops.yaml."""
    if command == "scale":
        return Scale(namespace=args["namespace"], deployment=args["deployment"], replicas=args["replicas"])
    if command == "restart":
        at = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return Restart(namespace=args["namespace"], deployment=args["deployment"], at=at)
    if command == "limits":
        if not args.get("memory") and not args.get("cpu"):
            raise UsageError("`limits` needs --memory and/or --cpu.")
        return Limits(namespace=args["namespace"], deployment=args["deployment"], container=args.get("container"),
                      memory=args.get("memory") or None, cpu=args.get("cpu") or None)
    if command == "breaker":
        return Breaker(namespace=args["namespace"], enabled=args["state"], configmap=breaker[0], key=breaker[1])
    if command == "silence":
        comment = str(args.get("comment") or "") or f"Silenced from Slack by {requester.name or requester.user_id}"
        return Silence(matchers=(("alertname", args["alertname"]), *args.get("matchers", ())),
                       seconds=float(args["for"]), created_by=requester.name or requester.user_id,
                       comment=comment, request=request_id)
    if command == "unsilence":
        return Unsilence(silence_id=args["silence"])
    raise ValueError(f"{command} is not a mutating command")
