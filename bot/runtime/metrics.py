"""The bot's own Prometheus metrics, on a registry of its own (so tests don't share state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "chatops_requests_total",
            "Requests handled, by kind (command, event, interaction, alertmanager) and outcome",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.handler_seconds = Histogram(
            "chatops_handler_duration_seconds",
            "Time from receiving a request to finishing its work",
            ["kind"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 30),
            registry=self.registry,
        )
        self.backend_errors = Counter(
            "chatops_backend_errors_total",
            "Diagnostics that failed because their backend was down, slow or refused",
            ["backend"],
            registry=self.registry,
        )

        self.work = Counter(
            "chatops_work_total",
            "Durable jobs that ended a run, by kind and outcome (done, retried, given_up, failed, released, lost)",
            ["kind", "outcome"],
            registry=self.registry,
        )

        self.mitigations = Counter(
            "chatops_mitigations_total",
            "Approval requests' audited events (requested, approved, refused, executed, failed, …) by action",
            ["action", "event"],
            registry=self.registry,
        )

        self.escalations = Counter(
            "chatops_escalations_total",
            "Escalations (PagerDuty and the managers' channel), by kind: ack, resolve, related, manual",
            ["kind"],
            registry=self.registry,
        )
        self.timers_overdue = Counter(
            "chatops_timers_overdue_total",
            "Escalation deadlines handled more than 30 s after they were due (the bot was down or busy)",
            registry=self.registry,
        )

    def escalation(self, kind: str) -> None:
        self.escalations.labels(kind=kind).inc()

    def timer_overdue(self) -> None:
        self.timers_overdue.inc()

    def mitigation(self, action: str, event: str) -> None:
        self.mitigations.labels(action=action or "unknown", event=event).inc()

    def work_outcome(self, kind: str, outcome: str) -> None:
        self.work.labels(kind=kind, outcome=outcome).inc()

    def command_answered(self, seconds: float, outcome: str) -> None:
        """A slash command's answer is posted (or failed): time from the request."""
        self.handler_seconds.labels(kind="command_answer").observe(seconds)
        if outcome != "ok":
            self.requests.labels(kind="command_answer", outcome=outcome).inc()

    def backend_error(self, backend: str) -> None:
        self.backend_errors.labels(backend=backend).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
