"""Entry point.

    python app.py                      serve the bot (Socket Mode if SLACK_APP_TOKEN is set, else HTTP)
    python app.py ops <words>          run one /ops command in the terminal and print the result (cli.py)

Exit codes: 0 ok; 2 configuration error (one line on stderr). For `ops`, like a
monitoring check: 0 ok, 1 warning, 2 critical, 3 unknown or the check failed; 64 bad usage.

The composition root: settings -> chatops.yaml's sections -> clients -> command table -> the
Bolt app, handlers, alert threads and the server.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cli
from bot.alerting.playbooks import validate_steps
from bot.all_sections import Sections, load_sections
from bot.clients import Clients, ClientSetupError
from bot.commands.table import build_table
from bot.errors import ConfigError
from bot.runtime.logsetup import setup_logging
from bot.runtime.metrics import Metrics
from bot.settings import Settings, load_settings

if TYPE_CHECKING:
    from aiohttp import web
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.alerting.threads import AlertThreads
    from bot.runtime.runtime import Runtime

log = logging.getLogger("app")


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "ops":
        return cli.main(argv[2:])
    try:
        settings = load_settings(mode="serve")
        sections = load_sections(settings)
    except ConfigError as e:
        return cli.config_error(e)
    setup_logging(settings.log_level, settings.log_format, settings.secrets())
    try:
        return asyncio.run(serve(settings, sections))
    except (ClientSetupError, ConfigError) as e:
        return cli.config_error(e)
    except KeyboardInterrupt:
        return 130


@dataclass
class RunningBot:
    """A started bot: the HTTP server, and the Socket Mode connection when configured."""

    runtime: "Runtime"
    runner: "web.AppRunner"
    slack: "AsyncWebClient"
    socket_handler: "AsyncSocketModeHandler | None"
    threads: "AlertThreads"

    @property
    def port(self) -> int:
        return int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop taking work, let what is in flight finish (bounded), then close everything."""
        runtime = self.runtime
        log.info("stopping: finishing %d request(s) in flight", runtime.inflight)
        runtime.draining = True
        if self.socket_handler is not None:
            await self.socket_handler.close_async()
        grace = runtime.settings.shutdown_grace_seconds
        if not await runtime.wait_idle(grace):
            log.warning("gave up waiting after %g s with %d request(s) in flight", grace, runtime.inflight)
        await self.runner.cleanup()
        await runtime.clients.close()
        await runtime.store.close()
        log.info("stopped")


def build_alert_threads(runtime: "Runtime", slack: "AsyncWebClient") -> "AlertThreads":
    from bot.alerting.ingest import fetch_active
    from bot.alerting.threads import AlertThreads
    from bot.settings import safe_url
    from bot.slack.poster import Poster

    settings, clients, sections = runtime.settings, runtime.clients, runtime.sections
    config = sections.alerts

    async def active(fresh: bool = False) -> list:  # type: ignore[type-arg]
        def fetch():  # type: ignore[no-untyped-def]
            return fetch_active(clients.http, settings.alertmanager_url, settings.diagnostic_timeout)

        # Many posts at once (a storm) share one answer; "is it still active?" must be fresh.
        return await (fetch() if fresh else clients.cache.get(("alertmanager.active",), fetch))

    def links(alert):  # type: ignore[no-untyped-def]
        out = [("Prometheus", alert.generator_url), ("Runbook", alert.runbook_url)]
        if settings.grafana_url:
            out.append(("Grafana", safe_url(settings.grafana_url)))
        return out

    return AlertThreads(
        settings=settings, config=config, store=runtime.store, poster=Poster(slack, config.post_interval),
        playbooks=sections.playbooks, table=runtime.table, context=runtime.context,
        fetch_active=active if settings.alertmanager_url else None, links=links, track=runtime.work,
    )


async def start_bot(settings: Settings, host: str = "0.0.0.0", sections: Sections | None = None) -> RunningBot:
    """Start the bot; `sections` are chatops.yaml's, parsed from `settings` when not given (tests)."""
    from aiohttp import web
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    import handlers
    from bot.runtime.runtime import Runtime
    from bot.runtime.server import build_server
    from bot.slack.app import build_app, build_web_client
    from bot.state.store import open_store

    if sections is None:
        sections = load_sections(settings)
    table = build_table(sections)
    validate_steps(sections.playbooks, lambda line: table.parse(line, settings.default_namespace),
                   settings.config_name)
    clients = await Clients.build(settings)
    runtime = Runtime(settings=settings, sections=sections, clients=clients, table=table, metrics=Metrics(),
                      store=open_store(settings.state_url))
    slack = build_web_client(settings)
    app = build_app(runtime, slack)
    threads = build_alert_threads(runtime, slack)
    handlers.register_all(app, runtime, threads)

    from handlers.alerts import webhook_handler

    server = build_server(runtime, app, slack, alertmanager=webhook_handler(runtime, threads))
    runner = web.AppRunner(server, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host=host, port=settings.port).start()
    bot = RunningBot(runtime=runtime, runner=runner, slack=slack, socket_handler=None, threads=threads)
    if settings.socket_mode:
        bot.socket_handler = AsyncSocketModeHandler(app, settings.slack_app_token, web_client=slack)
        await bot.socket_handler.connect_async()
        log.info("connected to Slack in Socket Mode; health and metrics on :%d", bot.port)
    else:
        log.info("listening on :%d (POST /slack/events)", bot.port)
    return bot


async def serve(settings: Settings, sections: Sections) -> int:
    bot = await start_bot(settings, sections=sections)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await bot.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
