"""The aiohttp server: /slack/events (HTTP mode), /healthz, /readyz, /metrics.

In Socket Mode the same server still answers the health and metrics endpoints; Slack's
requests arrive over the websocket instead of /slack/events.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime.health import readiness
from bot.runtime.intake import MAX_BODY, Refused, check_slack_signature, decode_text, parse_slack_body, read_capped
from bot.runtime.metrics import CONTENT_TYPE
from bot.runtime.runtime import Runtime

log = logging.getLogger(__name__)


def build_server(runtime: Runtime, app: AsyncApp, slack: AsyncWebClient,
                 alertmanager: Any = None) -> web.Application:
    """`alertmanager`: the handler of POST /alertmanager (handlers/alerts.py)."""
    server = web.Application(client_max_size=MAX_BODY)

    async def slack_events(request: web.Request) -> web.Response:
        started = time.monotonic()
        kind = _kind(request.content_type, b"")
        try:
            # Capped, signed, then parsed: nothing reads a byte the signature does not cover.
            raw = await read_capped(request)
            kind = _kind(request.content_type, raw)
            check_slack_signature(runtime.settings.slack_signing_secret, request.headers, raw)
            text = decode_text(raw, request.charset)
            parse_slack_body(text, request.content_type)
            bolt_request = _bolt_request(request, text)
        except Refused as refused:
            # Forged, unsigned, stale, too big or malformed: nothing ran. Counted, so an attack
            # shows in /metrics.
            outcome = "rejected" if refused.status == 401 else "invalid"
            runtime.metrics.requests.labels(kind=kind, outcome=outcome).inc()
            log.warning("refused a %s request (%d): %s", kind, refused.status, refused.reason)
            return refused.response()
        bolt_response = await app.async_dispatch(bolt_request)
        runtime.metrics.handler_seconds.labels(kind=f"{kind}_ack").observe(time.monotonic() - started)
        return await to_aiohttp_response(bolt_response)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        if runtime.starting:  # warming up: the backends' checks would only compete with it
            return web.json_response({"ready": False, "starting": True, "draining": False, "checks": {}}, status=503)
        checks = await readiness(runtime.clients, slack, runtime.store)
        ready = all(c["ok"] for c in checks.values()) and not runtime.draining
        body = {"ready": ready, "starting": False, "draining": runtime.draining, "checks": checks}
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


def _bolt_request(request: web.Request, text: str) -> AsyncBoltRequest:
    try:
        return AsyncBoltRequest(body=text, query=request.query_string,
                                headers=request.headers)  # type: ignore[arg-type]  # as Bolt's adapter does
    except Exception as e:  # noqa: BLE001 - a shape parse_slack_body let through: refused, not a 500
        raise Refused(400, f"a payload Bolt could not read ({type(e).__name__})", "malformed payload") from None


def _kind(content_type: str, body: bytes) -> str:
    if content_type == "application/json":
        return "event"
    if body.startswith(b"payload=") or b"&payload=" in body:
        return "interaction"
    return "command"
