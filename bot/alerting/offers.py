"""The runbook's mitigations offered in an alert's thread: buttons that make approval requests.

The investigation reply carries, under the report, a button per playbook action (`scale-up`,
`raise-limits`, `circuit-breaker`) and a Silence choice (1 h / 4 h / 24 h) for every alert. A
click does not change anything: it makes the same approval request `/ops scale …` would, in the
alert's thread, filled from the alert as the store keeps it (its thread document). The button's
value is the thread's key and nothing else; the alert's labels, the deployment and the numbers
are read from the store and from the cluster, never from the click.

    scale-up         current replicas + 50 % (at least + 1), within the policy's max_replicas
    raise-limits     the runbook's limits (chatops.yaml actions.raise_limits: 6Gi / 2000m)
    circuit-breaker  the runbook's ConfigMap key to "true"
    silence          every label of the alert, for the chosen time

For a group (a webhook thread of several alerts) the alert is what they have in common: silence
matches the labels they share; a change to a Deployment is refused when they name several.
"""

from __future__ import annotations

import math
from typing import Any, Awaitable, Callable, Mapping, Sequence

from bot.actions.commands import Requester
from bot.actions.config import ActionsConfig
from bot.alerting.model import Alert
from bot.alerting.playbooks import Playbooks, parameters
from bot.alerting.state import load_thread
from bot.commands.args import k8s_name, k8s_namespace
from bot.errors import UsageError
from bot.state.store import Store
from operations.model import Breaker, Limits, Scale, Silence, Spec

OFFER_PREFIX = "ops-offer-"
SILENCE = "silence"
LABELS = {"scale-up": "Scale up", "raise-limits": "Raise limits", "circuit-breaker": "Circuit breaker on"}
SILENCE_CHOICES = {"1h": ("1 h", 3600), "4h": ("4 h", 4 * 3600), "24h": ("24 h", 24 * 3600)}


def offer_blocks(thread_key: str, actions: Sequence[str]) -> list[dict[str, Any]]:
    """The actions block of an investigation reply: one button per known playbook action, and
    the silence choice. Values: the thread key (and the silence's length)."""
    elements: list[dict[str, Any]] = [
        {"type": "button", "action_id": OFFER_PREFIX + action, "value": thread_key,
         "text": {"type": "plain_text", "text": LABELS[action]}}
        for action in actions if action in LABELS
    ]
    elements.append({
        "type": "static_select", "action_id": OFFER_PREFIX + SILENCE,
        "placeholder": {"type": "plain_text", "text": "Silence…"},
        "options": [{"text": {"type": "plain_text", "text": f"Silence {label}"}, "value": f"{thread_key}|{name}"}
                    for name, (label, _) in SILENCE_CHOICES.items()],
    })
    return [{"type": "actions", "block_id": "offers", "elements": elements}]


def read_click(action: dict[str, Any]) -> tuple[str, str, float] | None:
    """(offer, thread key, silence seconds) from a click on an offer; None if it is not one."""
    action_id = str(action.get("action_id", ""))
    if not action_id.startswith(OFFER_PREFIX):
        return None
    offer = action_id.removeprefix(OFFER_PREFIX)
    if offer == SILENCE:
        selected = action.get("selected_option")
        value = str((selected.get("value") if isinstance(selected, dict) else None) or "")
        key, _, choice = value.rpartition("|")
        if choice not in SILENCE_CHOICES:
            return None
        return offer, key, float(SILENCE_CHOICES[choice][1])
    if offer not in LABELS:
        return None
    return offer, str(action.get("value", "")), 0.0


Replicas = Callable[[str, str], Awaitable[int]]


class Offers:
    """Turns a click on an offer into the change it asks for."""

    def __init__(self, store: Store, playbooks: Playbooks, config: ActionsConfig, replicas: Replicas,
                 max_replicas: Callable[[], int | None]) -> None:
        self.store, self.playbooks, self.config = store, playbooks, config
        self.replicas, self.max_replicas = replicas, max_replicas

    async def spec(self, offer: str, thread_key: str, seconds: float, requester: Requester,
                   request_id: str, channel: str) -> tuple[Spec, str, str]:
        """(the change, the channel, the thread's ts) for an offer on the thread `thread_key`,
        clicked in `channel` (it must be the thread's: a button names no other channel's alert)."""
        if not thread_key.startswith("thread:"):
            raise UsageError("this button belongs to no alert thread")
        thread = await load_thread(self.store, thread_key)
        if thread is None:
            raise UsageError("this alert's thread is no longer known (threads are kept 30 days)")
        if channel != thread.channel:
            raise UsageError("this button belongs to an alert in another channel")
        alert = thread.alert()
        if offer != SILENCE and offer not in self.playbooks.for_alert(alert).actions:
            raise UsageError(f"{offer} is not a mitigation of {alert.name}")
        values = parameters(alert, self.playbooks.defaults)
        if offer != SILENCE:
            _one_target(thread.firing() or thread.members(), self.playbooks.defaults)
        # Label values name the objects: only valid Kubernetes names (UsageError names the label).
        namespace = _named(k8s_namespace, values["namespace"], "namespace")
        deployment = _named(k8s_name, values["deployment"], "deployment")
        spec: Spec
        if offer == "scale-up":
            current, maximum = await self.replicas(namespace, deployment), self.max_replicas()
            wanted = scaled_up(current, maximum)
            if wanted <= current:
                raise UsageError(f"Deployment {namespace}/{deployment} already runs {current} replicas, "
                                 f"the policy's maximum is {maximum}")
            spec = Scale(namespace=namespace, deployment=deployment, replicas=wanted)
        elif offer == "raise-limits":
            limits = self.config.raise_limits
            spec = Limits(namespace=namespace, deployment=deployment, container=limits.container or None,
                          memory=limits.memory or None, cpu=limits.cpu or None)
        elif offer == "circuit-breaker":
            breaker = self.config.breaker
            spec = Breaker(namespace=namespace, enabled=True, configmap=breaker.configmap, key=breaker.key)
        else:
            matchers = tuple(sorted(alert.labels.items()))
            spec = Silence(matchers=matchers, seconds=seconds, created_by=requester.name or requester.user_id,
                           comment=f"{alert.name}: silenced from its Slack thread", request=request_id)
        return spec, thread.channel, thread.ts


def _one_target(alerts: Sequence[Alert], defaults: Mapping[str, str]) -> None:
    """A group's mitigation changes one Deployment: refused when its alerts name several."""
    targets = sorted({(v["namespace"], v["deployment"]) for v in (parameters(a, defaults) for a in alerts)})
    if len(targets) > 1:
        named = ", ".join(f"{ns}/{name}" for ns, name in targets[:5]) + (" …" if len(targets) > 5 else "")
        raise UsageError(f"the {len(alerts)} alerts of this thread are in {len(targets)} Deployments ({named}); "
                         "ask for the one to change with /ops")


def _named(convert: Callable[[str, str], str], value: str, what: str) -> str:
    try:
        return convert(value, what)
    except UsageError as e:
        raise UsageError(f"the alert's {what} is not usable: {e.message}") from None


def scaled_up(current: int, maximum: int | None) -> int:
    """+50 %, at least +1, at most the policy's maximum (and never below the current count)."""
    wanted = max(current + 1, math.ceil(current * 1.5))
    return max(current, min(wanted, maximum)) if maximum is not None else wanted
