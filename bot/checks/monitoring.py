"""The monitoring stack's own health: Prometheus, Alertmanager, Elasticsearch, Grafana."""

from __future__ import annotations

from bot.checks.common import Check, run_checks
from bot.commands.model import Args, Command, Context
from bot.commands.report import Report
from diagnostics import monitoring


async def monitoring_stack(ctx: Context, args: Args) -> Report:
    s, clients = ctx.settings, ctx.clients
    timeout = s.diagnostic_timeout
    checks = [
        Check("Prometheus", "prometheus",
              lambda: monitoring.prometheus_health(clients.http, s.prometheus_url, timeout=timeout)),
        Check("Alertmanager", "alertmanager",
              lambda: monitoring.alertmanager_health(clients.http, s.alertmanager_url, timeout=timeout)),
        Check("Elasticsearch", "elasticsearch",
              lambda: monitoring.elasticsearch_health(clients.elasticsearch, s.elasticsearch_url, timeout=timeout)),
        Check("Grafana", "grafana",
              lambda: monitoring.grafana_health(clients.http, s.grafana_url, timeout=timeout)),
    ]
    # Each component answers within its own timeout; the outer bound is a backstop.
    checks = [Check(c.title, c.backend, c.run, timeout=timeout + 1) for c in checks]
    return Report(title="Monitoring stack", results=await run_checks(ctx, checks))


COMMANDS = [
    Command(
        "monitoring",
        "The monitoring stack itself: Prometheus ready, targets down, TSDB series; Alertmanager and its "
        "cluster; Elasticsearch health; Grafana; and the runbook's next step for what is broken",
        (),
        run=monitoring_stack,
        example="monitoring",
    ),
]
