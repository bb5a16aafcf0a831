"""Which backend carries out which change: operations/ functions with the bot's clients and timeouts.

Kubernetes changes go through the one `kubernetes.aio` client (with `Impersonate-User:
slack:<user>` when `policy.impersonate` is on); silences through Alertmanager's API v2 over
the shared aiohttp session. A backend that is not configured is a permanent OperationError
naming the variable to set.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from bot.clients import BACKEND_SETTINGS, Clients
from bot.settings import Settings, safe_url
from operations import kubernetes, silences
from operations.model import OperationError, Outcome, Preview, Silence, Spec, Unsilence


class Backends:
    def __init__(self, settings: Settings, clients: Clients, *, impersonate: bool,
                 now: Callable[[], datetime] | None = None) -> None:
        self.settings, self.clients, self.impersonate = settings, clients, impersonate
        self._now = now or (lambda: datetime.now(timezone.utc))

    @property
    def timeout(self) -> float:
        return float(self.settings.diagnostic_timeout)

    def _as(self, user: str) -> str | None:
        return f"slack:{user}" if self.impersonate and user else None

    def _ready(self, backend: str) -> None:
        if not self.clients.configured(backend):
            name, variable = BACKEND_SETTINGS[backend]
            raise OperationError(f"{name} is not configured: set {variable}")

    async def preview(self, spec: Spec, *, impersonate: str = "") -> Preview:
        if isinstance(spec, (Silence, Unsilence)):
            self._ready("alertmanager")
            return await silences.preview(self.clients.http, self.settings.alertmanager_url, spec,
                                          location=safe_url(self.settings.alertmanager_url), timeout=self.timeout)
        self._ready("kubernetes")
        await self.clients.kubernetes_ready()
        return await kubernetes.preview(self.clients.kubernetes, spec, timeout=self.timeout,
                                        impersonate=self._as(impersonate))

    async def apply(self, spec: Spec, preview: Preview, request_id: str, *, impersonate: str = "") -> Outcome:
        if isinstance(spec, (Silence, Unsilence)):
            self._ready("alertmanager")
            return await silences.apply(self.clients.http, self.settings.alertmanager_url, spec, preview,
                                        location=safe_url(self.settings.alertmanager_url), timeout=self.timeout,
                                        now=self._now())
        self._ready("kubernetes")
        await self.clients.kubernetes_ready()
        return await kubernetes.apply(self.clients.kubernetes, spec, preview, timeout=self.timeout,
                                      impersonate=self._as(impersonate))

    async def current_replicas(self, namespace: str, deployment: str) -> int:
        """The Deployment's replicas now: what "Scale up" adds to."""
        self._ready("kubernetes")
        await self.clients.kubernetes_ready()
        return await kubernetes.current_replicas(self.clients.kubernetes, namespace, deployment, timeout=self.timeout)

    def revert(self, spec: Spec, preview: Preview, outcome: Outcome) -> Spec | None:
        if isinstance(spec, (Silence, Unsilence)):
            return silences.revert(spec, preview, outcome)
        return kubernetes.revert(spec, preview, outcome)
