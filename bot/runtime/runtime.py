"""The runtime state every handler shares: settings, chatops.yaml's sections, clients, command table,
metrics, store."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import AsyncIterator

from bot.all_sections import Sections
from bot.clients import Clients
from bot.commands.model import Context
from bot.commands.parser import CommandTable
from bot.runtime.metrics import Metrics
from bot.settings import Settings
from bot.state.store import Store


@dataclass
class Runtime:
    """What every handler needs, built once at start."""

    settings: Settings
    sections: Sections
    clients: Clients
    table: CommandTable
    metrics: Metrics
    store: Store
    draining: bool = False
    _inflight: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._idle.set()

    @property
    def context(self) -> Context:
        return Context(self.settings, self.clients, on_backend_error=self.metrics.backend_error)

    @contextlib.asynccontextmanager
    async def work(self) -> AsyncIterator[None]:
        """Marks a piece of work in flight, so that SIGTERM can let it finish."""
        self._inflight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    @property
    def inflight(self) -> int:
        return self._inflight

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False
