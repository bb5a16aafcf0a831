"""Serving a fake's aiohttp app on a free 127.0.0.1 port."""

from __future__ import annotations

import socket

from aiohttp import web


async def serve(app: web.Application, *, handler_cancellation: bool = False) -> tuple[web.AppRunner, int]:
    """Start `app` on a free loopback port: its runner (cleanup() stops it) and the port.

    handler_cancellation: a client that gives up on a request cancels its handler, so a fake
    holding requests sees it (and never carries the request out afterwards).
    """
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handler_cancellation=handler_cancellation)
    await runner.setup()
    # Bind the socket ourselves: port 0 picks a free port and we can read it back.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    return runner, int(sock.getsockname()[1])
