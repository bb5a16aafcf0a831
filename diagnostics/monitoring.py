"""The monitoring stack itself: the runbook's "Troubleshooting Monitoring Issues".

Each component is its own diagnostic, so one that is down or slow costs only its own row;
for whatever is broken, the Result says the runbook's next step.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from diagnostics.http_api import BackendError, request
from diagnostics.result import Result, Status

# The runbook's next steps, per component.
NEXT_STEPS = {
    "prometheus_down": [
        "kubectl logs deployment/prometheus -n monitoring --tail=50",
        "kubectl rollout restart deployment/prometheus -n monitoring",
    ],
    "targets_down": [
        "kubectl get servicemonitor -n <namespace>  (service discovery)",
        "kubectl exec -it deployment/<app> -n <namespace> -- curl localhost:8080/metrics",
        "kubectl patch svc <app> -n <namespace> -p '{\"metadata\":{\"labels\":{\"monitoring\":\"enabled\"}}}'",
    ],
    "alertmanager": [
        "kubectl logs deployment/alertmanager -n monitoring --tail=50",
        "kubectl get prometheusrule -n monitoring",
        "kubectl rollout restart deployment/alertmanager -n monitoring  (reloads the config)",
    ],
    "elasticsearch": [
        "curl -s elasticsearch.logging.svc.cluster.local:9200/_cluster/allocation/explain",
        "kubectl get pods -n logging",
    ],
    "grafana": [
        "kubectl logs deployment/grafana -n monitoring --tail=50",
        "kubectl exec -it deployment/grafana -n monitoring -- curl -s http://prometheus:9090/api/v1/label/__name__/values",
        "kubectl rollout restart deployment/grafana -n monitoring",
    ],
}


async def _get(session: aiohttp.ClientSession, url: str, timeout: float, component: str,
               where: str) -> tuple[int, Any]:
    """Status and body (JSON when it parses, else None); BackendError when there is no answer."""
    status, body = await request(session, url, backend=component, location=where, timeout=timeout)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def _broken(title: str, summary: str, steps: str, status: Status = Status.ERROR) -> Result:
    return Result(status=status, title=title, summary=summary, lines=["Next steps:", *NEXT_STEPS[steps]])


async def prometheus_health(session: aiohttp.ClientSession, url: str, *, timeout: float = 8.0) -> Result:
    title = "Prometheus"
    try:
        ready, _ = await _get(session, f"{url}/-/ready", timeout, title, url)
        if ready != 200:
            return _broken(title, f"not ready (HTTP {ready}) at {url}", "prometheus_down")
        (code, targets), (_, tsdb) = await asyncio.gather(
            _get(session, f"{url}/api/v1/targets?state=active", timeout, title, url),
            _get(session, f"{url}/api/v1/status/tsdb", timeout, title, url),
        )
    except BackendError as e:
        return _broken(title, str(e), "prometheus_down")
    data = targets.get("data") if isinstance(targets, dict) else None
    active = data.get("activeTargets") if isinstance(data, dict) else None
    if code != 200 or not isinstance(active, list):
        problem = f"HTTP {code}" if code != 200 else "no JSON list of active targets"
        return _broken(title, f"ready, but /api/v1/targets answered {problem} at {url}", "prometheus_down")
    down = [t for t in active if t.get("health") != "up"]
    series = (tsdb or {}).get("data", {}).get("headStats", {}).get("numSeries") if isinstance(tsdb, dict) else None
    fields = {"Targets": f"{len(active) - len(down)}/{len(active)} up"}
    if series is not None:
        fields["Head series"] = f"{series:,}"
    if not active:
        return Result(status=Status.WARNING, title=title, summary="ready; no scrape targets", fields=fields,
                      lines=["Next steps:", *NEXT_STEPS["targets_down"]])
    if down:
        lines = [f"{t.get('labels', {}).get('job', '?')} {t.get('scrapeUrl', '')}: {t.get('lastError') or 'down'}"
                 for t in down[:10]]
        return Result(status=Status.WARNING, title=title, summary=f"ready; {len(down)} scrape target(s) down",
                      fields=fields, lines=[*lines, "Next steps:", *NEXT_STEPS["targets_down"]])
    return Result(status=Status.OK, title=title, summary="ready; all scrape targets up", fields=fields)


async def alertmanager_health(session: aiohttp.ClientSession, url: str, *, timeout: float = 8.0) -> Result:
    title = "Alertmanager"
    try:
        ready, _ = await _get(session, f"{url}/-/ready", timeout, title, url)
        if ready != 200:
            return _broken(title, f"not ready (HTTP {ready}) at {url}", "alertmanager")
        _, status = await _get(session, f"{url}/api/v2/status", timeout, title, url)
    except BackendError as e:
        return _broken(title, str(e), "alertmanager")
    cluster = status.get("cluster", {}) if isinstance(status, dict) else {}
    state = cluster.get("status", "unknown")
    peers = len(cluster.get("peers") or [])
    version = (status.get("versionInfo") or {}).get("version", "") if isinstance(status, dict) else ""
    fields = {"Cluster": state, "Peers": str(peers)}
    if version:
        fields["Version"] = version
    # "disabled" is a single instance with clustering off: healthy. "settling" passes by itself.
    if state not in ("ready", "disabled", "settling"):
        return Result(status=Status.WARNING, title=title, summary=f"ready; cluster is {state}", fields=fields,
                      lines=["Next steps:", *NEXT_STEPS["alertmanager"]])
    return Result(status=Status.OK, title=title, summary=f"ready; cluster {state}", fields=fields)


async def elasticsearch_health(es: Any, url: str, *, timeout: float = 8.0) -> Result:
    title = "Elasticsearch"
    from elastic_transport import ConnectionTimeout

    try:
        health = await asyncio.wait_for(es.options(request_timeout=timeout).cluster.health(), timeout)
    except (asyncio.TimeoutError, ConnectionTimeout):
        return _broken(title, f"timed out after {timeout:g} s at {url}", "elasticsearch")
    except Exception as e:  # noqa: BLE001 - the client raises many kinds; each is "not answering"
        first_line = str(e).splitlines()[0] if str(e) else ""
        return _broken(title, f"{type(e).__name__}: {first_line} at {url}", "elasticsearch")
    colour = health.get("status", "unknown")
    fields = {
        "Status": colour,
        "Nodes": str(health.get("number_of_nodes", "?")),
        "Unassigned shards": str(health.get("unassigned_shards", "?")),
    }
    status = {"green": Status.OK, "yellow": Status.WARNING, "red": Status.CRITICAL}.get(colour, Status.UNKNOWN)
    lines = [] if status is Status.OK else ["Next steps:", *NEXT_STEPS["elasticsearch"]]
    return Result(status=status, title=title, summary=f"cluster health {colour}", fields=fields, lines=lines)


async def grafana_health(session: aiohttp.ClientSession, url: str, *, timeout: float = 8.0) -> Result:
    title = "Grafana"
    try:
        code, body = await _get(session, f"{url}/api/health", timeout, title, url)
    except BackendError as e:
        return _broken(title, str(e), "grafana")
    database = body.get("database") if isinstance(body, dict) else None
    if code != 200 or database != "ok":
        problem = f"unhealthy (HTTP {code}, database {database or 'unknown'})"
        return _broken(title, f"{problem} at {url}", "grafana", Status.CRITICAL)
    version = body.get("version", "")
    return Result(status=Status.OK, title=title, summary="healthy; database ok",
                  fields={"Version": version} if version else {})
