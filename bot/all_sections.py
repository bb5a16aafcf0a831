"""Every section of chatops.yaml, each parsed once at start into its typed, frozen object.

    settings (env + chatops.yaml, sections kept raw) -> load_sections -> Sections
        -> the command table (bot/commands/table.py), alert threads, delivery

Each section's type and `load` live with what uses it; bot/sections.py is the one reader
they share. The first problem is a ConfigError of one line (app.py and cli.py exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from bot.actions import config as actions
from bot.actions import policy
from bot.actions.config import ActionsConfig
from bot.actions.policy import Policy
from bot.alerting import config as alerts
from bot.alerting import playbooks
from bot.alerting.config import AlertSettings
from bot.alerting.playbooks import DEFAULT_PARAMETERS, Playbooks
from bot.checks import aws, elasticsearch, http, prometheus
from bot.checks.aws import AwsDefaults
from bot.checks.prometheus import Presets
from bot.incidents import config as escalation
from bot.incidents.config import EscalationConfig
from bot.settings import Settings
from bot.state import config as delivery
from bot.state.config import DeliveryConfig
from diagnostics.elasticsearch import LogFields
from diagnostics.http import DEFAULT_DEPENDENCIES, Dependency
from diagnostics.presets import SloTargets


@dataclass(frozen=True)
class Sections:
    """One field per section of chatops.yaml (bot.settings.SECTIONS); the defaults are what an
    absent section means."""

    presets: Presets = field(default_factory=Presets)
    slo: SloTargets = field(default_factory=SloTargets)
    elasticsearch: LogFields = field(default_factory=LogFields)
    dependencies: tuple[Dependency, ...] = DEFAULT_DEPENDENCIES
    aws: AwsDefaults = field(default_factory=AwsDefaults)
    playbooks: Playbooks = field(default_factory=Playbooks)
    playbook_defaults: Mapping[str, str] = field(default_factory=lambda: MappingProxyType(dict(DEFAULT_PARAMETERS)))
    alerts: AlertSettings = field(default_factory=AlertSettings)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    actions: ActionsConfig = field(default_factory=ActionsConfig)
    policy: Policy | None = None  # None: no `policy:` section, every mutating command refused
    escalation: EscalationConfig = field(default_factory=EscalationConfig)


def load_sections(settings: Settings) -> Sections:
    """Parse every section of the chatops.yaml `settings` was read from. ConfigError on the first problem."""
    raw, file = settings.sections, settings.config_name
    books = playbooks.load(raw.get("playbooks"), raw.get("playbook_defaults"), file)
    return Sections(
        presets=prometheus.load_presets(raw.get("presets"), file),
        slo=prometheus.load_slo(raw.get("slo"), file),
        elasticsearch=elasticsearch.load(raw.get("elasticsearch"), file),
        dependencies=http.load(raw.get("dependencies"), file),
        aws=aws.load(raw.get("aws"), file),
        playbooks=books,
        playbook_defaults=books.defaults,
        alerts=alerts.load(raw.get("alerts"), file),
        delivery=delivery.load(raw.get("delivery"), file),
        actions=actions.load(raw.get("actions"), file),
        policy=policy.load(raw.get("policy"), file),
        escalation=escalation.load(raw.get("escalation"), file),
    )
