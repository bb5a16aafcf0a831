"""The runtime state every handler shares: settings, chatops.yaml's sections, clients, command table,
metrics, store."""

from __future__ import annotations

from dataclasses import dataclass

from bot.all_sections import Sections
from bot.clients import Clients
from bot.commands.model import Context
from bot.commands.parser import CommandTable
from bot.runtime.metrics import Metrics
from bot.settings import Settings
from bot.state.store import Store


@dataclass
class Runtime:
    """What every handler needs, built once at start.

    `starting` is cleared once start-up (the warm-up included) is done: until then /readyz says 503,
    so no traffic is routed to a bot that would stall on its first commands.
    `draining` is set on SIGTERM: handlers then take no new work (Alertmanager gets 503 and
    retries; a person is told to try again) while the worker finishes or hands back its jobs.
    """

    settings: Settings
    sections: Sections
    clients: Clients
    table: CommandTable
    metrics: Metrics
    store: Store
    starting: bool = True
    draining: bool = False

    @property
    def context(self) -> Context:
        return Context(self.settings, self.clients, on_backend_error=self.metrics.backend_error, store=self.store)
