"""The aiohttp server: /slack/events (HTTP mode), /healthz, /readyz, /metrics.

In Socket Mode the same server still answers the health and metrics endpoints; Slack's
requests arrive over the websocket instead of /slack/events.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime.health import readiness
from bot.runtime.metrics import CONTENT_TYPE
from bot.runtime.runtime import Runtime

log = logging.getLogger(__name__)

# Slack's payloads are small, but one Alertmanager notification of a storm carries every
# alert of the group (about 1 KiB each).
MAX_BODY = 16 * 1024 * 1024


def build_server(runtime: Runtime, app: AsyncApp, slack: AsyncWebClient,
                 alertmanager: Any = None) -> web.Application:
    """`alertmanager`: the handler of POST /alertmanager (handlers/alerts.py)."""
    server = web.Application(client_max_size=MAX_BODY)

    async def slack_events(request: web.Request) -> web.Response:
        started = time.monotonic()
        bolt_request = await to_bolt_request(request)
        kind = _kind(request.content_type, bolt_request.raw_body)
        bolt_response = await app.async_dispatch(bolt_request)
        if bolt_response.status == 401:
            # Forged, unsigned or stale: nothing ran. Counted, so an attack shows in /metrics.
            runtime.metrics.requests.labels(kind=kind, outcome="rejected").inc()
            log.warning("rejected a %s request with a bad or stale signature", kind)
        runtime.metrics.handler_seconds.labels(kind=f"{kind}_ack").observe(time.monotonic() - started)
        return await to_aiohttp_response(bolt_response)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        checks = await readiness(runtime.clients, slack, runtime.store)
        ready = all(c["ok"] for c in checks.values()) and not runtime.draining
        body = {"ready": ready, "draining": runtime.draining, "checks": checks}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(request: web.Request) -> web.Response:
        response = web.Response(body=runtime.metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    if not runtime.settings.socket_mode:
        server.router.add_post("/slack/events", slack_events)
    if alertmanager is not None:
        server.router.add_post("/alertmanager", alertmanager)
    server.router.add_get("/healthz", healthz)
    server.router.add_get("/readyz", readyz)
    server.router.add_get("/metrics", metrics)
    return server


def _kind(content_type: str, body: str) -> str:
    if content_type == "application/json":
        return "event"
    if body.startswith("payload=") or "&payload=" in body:
        return "interaction"
    return "command"
