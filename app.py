"""Entry point.

    python app.py                      serve the bot (Socket Mode if SLACK_APP_TOKEN is set, else HTTP)
    python app.py ops <words>          run one /ops command in the terminal and print the result

Exit codes: 0 ok; 2 configuration error (one line on stderr). For `ops`, like a
monitoring check: 0 ok, 1 warning, 2 critical, 3 unknown or the check failed; 64 bad usage.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import signal
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.clients import Clients, ClientSetupError
from bot.errors import UsageError
from bot.commands.table import build_table
from bot.errors import ConfigError
from bot.settings import Settings, load_settings
from bot.runtime.logsetup import setup_logging
from bot.runtime.metrics import Metrics
from bot.slack.render import help_text, report_text
from diagnostics.result import Status

if TYPE_CHECKING:
    from aiohttp import web
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.alerting.config import AlertSettings
    from bot.alerting.threads import AlertThreads
    from bot.commands.report import Report
    from bot.runtime.runtime import Runtime
    from bot.slack.poster import Poster
    from bot.state.worker import Worker

log = logging.getLogger("app")

EXIT_CONFIG = 2
EXIT_USAGE = 64
# Alert posts, notes and resolutions: short Slack calls, paced per channel; investigations have their own lane.
ALERT_LANE_CONCURRENCY = 32
STATUS_EXIT = {Status.OK: 0, Status.WARNING: 1, Status.CRITICAL: 2, Status.UNKNOWN: 3, Status.ERROR: 3}


def main(argv: list[str]) -> int:
    cli = len(argv) > 1 and argv[1] == "ops"
    try:
        settings = load_settings(mode="cli" if cli else "serve")
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level if not cli else "WARNING", settings.log_format, settings.secrets())
    try:
        return asyncio.run(run_cli(settings, argv[2:]) if cli else serve(settings))
    except (ClientSetupError, ConfigError) as e:
        print(f"config error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def save_files(report: "Report") -> None:
    """Charts and long logs, which Slack gets as uploads, are written to a fresh directory."""
    files = [f for result in report.results for f in result.files]
    if not files:
        return
    import tempfile
    from pathlib import Path

    directory = Path(tempfile.mkdtemp(prefix="ops-"))
    for file in files:
        path = directory / Path(file.filename).name
        path.write_bytes(file.content)
        print(f"{file.title or 'file'}: {path}")


async def run_cli(settings: Settings, words: list[str]) -> int:
    from bot.commands.model import Context
    from bot.commands.execute import execute

    table = build_table()
    try:
        invocation = table.parse(shlex.join(words), settings.default_namespace)
    except UsageError as e:
        print(f"error: {e.message}", file=sys.stderr)
        if e.usage:
            print(f"usage: python app.py ops {e.usage}", file=sys.stderr)
        return EXIT_USAGE
    clients = await Clients.build(settings)
    try:
        if invocation.command.name == "help":
            print(help_text(table, "python app.py ops", clients.unconfigured()), end="")
            return 0
        report = await execute(invocation, Context(settings, clients))
        print(report_text(report), end="")
        save_files(report)
        return STATUS_EXIT[report.status]
    finally:
        await clients.close()


@dataclass
class RunningBot:
    """A started bot: the HTTP server, the worker, and the Socket Mode connection when configured."""

    runtime: "Runtime"
    runner: "web.AppRunner"
    slack: "AsyncWebClient"
    socket_handler: "AsyncSocketModeHandler | None"
    threads: "AlertThreads"
    worker: "Worker"
    poster: "Poster"

    @property
    def port(self) -> int:
        return int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop taking work; let running jobs finish (bounded) and hand the rest back to the store,
        where the next start or another replica takes them; close the store last."""
        runtime = self.runtime
        log.info("stopping: %d job(s) running", self.worker.running)
        runtime.draining = True
        if self.socket_handler is not None:
            await self.socket_handler.close_async()
        await self.worker.stop(runtime.settings.shutdown_grace_seconds)
        await self.runner.cleanup()
        await runtime.clients.close()
        await runtime.store.close()
        log.info("stopped")


def build_alert_threads(runtime: "Runtime", poster: "Poster", worker: "Worker", config: "AlertSettings"
                        ) -> "AlertThreads":
    from bot.alerting.ingest import fetch_active
    from bot.alerting.playbooks import load_playbooks, validate_steps
    from bot.alerting.threads import AlertThreads
    from bot.settings import safe_url

    settings, clients = runtime.settings, runtime.clients
    playbooks = load_playbooks(settings.sections)
    validate_steps(playbooks, lambda line: runtime.table.parse(line, settings.default_namespace))

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
        settings=settings, config=config, store=runtime.store, poster=poster, worker=worker,
        playbooks=playbooks, table=runtime.table, context=runtime.context,
        fetch_active=active if settings.alertmanager_url else None, links=links,
    )


async def start_bot(settings: Settings, host: str = "0.0.0.0") -> RunningBot:
    from aiohttp import ClientError, web
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_sdk.errors import SlackApiError, SlackClientError

    import handlers
    from bot.alerting.config import alert_settings
    from bot.runtime.runtime import Runtime
    from bot.runtime.server import build_server
    from bot.slack.answers import CommandAnswers
    from bot.slack.app import build_app, build_posting_client, build_web_client
    from bot.slack.poster import Poster
    from bot.state import keys
    from bot.state.config import DeliveryConfig
    from bot.state.store import open_store
    from bot.state.worker import Worker
    from diagnostics.http_api import BackendError
    from handlers.alerts import webhook_handler

    delivery = DeliveryConfig()
    alerts = alert_settings(settings)
    clients = await Clients.build(settings)
    metrics = Metrics()
    runtime = Runtime(settings=settings, clients=clients, table=build_table(), metrics=metrics,
                      store=open_store(settings.state_url))
    slack = build_web_client(settings, delivery.slack_timeout_seconds)
    poster = Poster(build_posting_client(settings, delivery.slack_timeout_seconds), alerts.post_interval,
                    store=runtime.store, reader=slack)
    worker = Worker(runtime.store, delivery, on_outcome=metrics.work_outcome,
                    expected=(SlackApiError, SlackClientError, ClientError, BackendError))
    worker.lane(keys.LANE_ALERTS, ALERT_LANE_CONCURRENCY)
    worker.lane(keys.LANE_INVESTIGATIONS, alerts.concurrency)
    worker.lane(keys.LANE_COMMANDS, delivery.command_concurrency)
    app = build_app(settings, slack)
    threads = build_alert_threads(runtime, poster, worker, alerts)
    answers = CommandAnswers(prefix=settings.command, default_namespace=settings.default_namespace,
                             table=runtime.table, context=runtime.context, store=runtime.store, poster=poster,
                             worker=worker, observe=metrics.command_answered)
    handlers.register_all(app, runtime, threads, answers)

    server = build_server(runtime, app, slack, alertmanager=webhook_handler(runtime, threads))
    runner = web.AppRunner(server, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host=host, port=settings.port).start()
    # Work recorded before a restart (or by a replica that died) is due: the worker takes it now.
    worker.start()
    bot = RunningBot(runtime=runtime, runner=runner, slack=slack, socket_handler=None, threads=threads,
                     worker=worker, poster=poster)
    if settings.socket_mode:
        bot.socket_handler = AsyncSocketModeHandler(app, settings.slack_app_token, web_client=slack)
        await bot.socket_handler.connect_async()
        log.info("connected to Slack in Socket Mode; health and metrics on :%d", bot.port)
    else:
        log.info("listening on :%d (POST /slack/events)", bot.port)
    return bot


async def serve(settings: Settings) -> int:
    bot = await start_bot(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await bot.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
