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
import gc
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable

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

    from bot.actions.approvals import Approvals
    from bot.actions.backends import Backends
    from bot.actions.policy import Authorizer
    from bot.alerting.incidents import Incidents
    from bot.alerting.model import Alert
    from bot.alerting.threads import AlertThreads
    from bot.runtime.runtime import Runtime
    from bot.slack.answers import CommandAnswers
    from bot.slack.poster import Poster
    from bot.state.clock import Clock
    from bot.state.worker import Worker

log = logging.getLogger("app")

# Alert posts, notes and resolutions: short Slack calls, paced per channel; investigations have their own lane.
ALERT_LANE_CONCURRENCY = 32
# Approval requests, clicks, executions and expiries: few at a time, never behind a storm.
ACTION_LANE_CONCURRENCY = 8


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
        started = time.monotonic()
        log.info("stopping: %d job(s) running", self.worker.running)
        runtime.draining = True
        if self.socket_handler is not None:
            await self.socket_handler.close_async()
        await self.worker.stop(runtime.settings.shutdown_grace_seconds)
        worked = time.monotonic()
        await self.runner.cleanup()
        await runtime.clients.close()
        await runtime.store.close()
        log.info("stopped in %.1f s (work finished or handed back in %.1f s)", time.monotonic() - started,
                 worked - started)


def build_alert_threads(runtime: "Runtime", poster: "Poster", worker: "Worker",
                        mitigations: "Mitigations | None" = None) -> "AlertThreads":
    from bot.alerting.ingest import fetch_active
    from bot.alerting.offers import offer_blocks
    from bot.alerting.threads import AlertThreads
    from bot.settings import safe_url

    settings, clients, sections = runtime.settings, runtime.clients, runtime.sections

    async def active(fresh: bool = False) -> list[Alert]:
        def fetch() -> Awaitable[list[Alert]]:
            return fetch_active(clients.http, settings.alertmanager_url, settings.diagnostic_timeout)

        # Many posts at once (a storm) share one answer; "is it still active?" must be fresh.
        return await (fetch() if fresh else clients.cache.get(("alertmanager.active",), fetch))

    def links(alert: Alert) -> list[tuple[str, str]]:
        out = [("Prometheus", alert.generator_url), ("Runbook", alert.runbook_url)]
        if settings.grafana_url:
            out.append(("Grafana", safe_url(settings.grafana_url)))
        return out

    return AlertThreads(
        settings=settings, config=sections.alerts, store=runtime.store, poster=poster, worker=worker,
        playbooks=sections.playbooks, table=runtime.table, context=runtime.context,
        fetch_active=active if settings.alertmanager_url else None, links=links,
        offers=offer_blocks if mitigations is not None and mitigations.authorizer.enabled else None,
    )


def build_incidents(runtime: "Runtime", threads: "AlertThreads", answers: "CommandAnswers", poster: "Poster",
                    worker: "Worker", mitigations: "Mitigations") -> "Incidents":
    """Acknowledgement (and escalation) in alert threads; `@ops ack` in a thread is one of its verbs."""
    from bot.alerting.incidents import Incidents
    from bot.incidents.pagerduty import PagerDuty

    settings = runtime.settings
    pager = (PagerDuty(runtime.clients.http, settings.pagerduty_routing_key, settings.pagerduty_events_url,
                       timeout=runtime.sections.delivery.slack_timeout_seconds)
             if settings.pagerduty_configured else None)
    incidents = Incidents(threads=threads, store=runtime.store, poster=poster, worker=worker,
                          may_ack=mitigations.authorizer.may_ack, escalation=runtime.sections.escalation,
                          pager=pager, observe=runtime.metrics.escalation, overdue=runtime.metrics.timer_overdue)
    for verb in ("ack", "acknowledge"):
        answers.thread_verbs[verb] = incidents.mention_ack
    answers.thread_verbs["escalate"] = incidents.mention_escalate
    answers.thread_verbs["postmortem"] = incidents.mention_postmortem
    return incidents


@dataclass
class Mitigations:
    """Who may change what (the policy), and the backends that carry the changes out."""

    authorizer: "Authorizer"
    backends: "Backends"


def build_mitigations(runtime: "Runtime", slack: "AsyncWebClient") -> Mitigations:
    from bot.actions.backends import Backends
    from bot.actions.policy import Authorizer
    from bot.slack.usergroups import UserGroups

    authorizer = Authorizer(runtime.sections.policy, UserGroups(slack, runtime.store.clock).members)
    return Mitigations(authorizer, Backends(runtime.settings, runtime.clients, impersonate=authorizer.impersonate))


def build_approvals(runtime: "Runtime", mitigations: Mitigations, poster: "Poster", worker: "Worker") -> "Approvals":
    from bot.actions.approvals import Approvals
    from bot.alerting.offers import Offers, read_click

    settings, sections = runtime.settings, runtime.sections
    authorizer, backends = mitigations.authorizer, mitigations.backends
    def max_replicas() -> int | None:
        rule = authorizer.rule("scale")
        return rule.max_replicas if rule is not None else None

    offers = Offers(runtime.store, sections.playbooks, sections.actions, backends.current_replicas, max_replicas)
    breaker = sections.actions.breaker
    return Approvals(store=runtime.store, worker=worker, poster=poster, table=runtime.table, authorizer=authorizer,
                     backends=backends, default_namespace=settings.default_namespace,
                     breaker=(breaker.configmap, breaker.key), offers=(read_click, offers.spec),
                     give_up_seconds=sections.delivery.give_up_after_minutes * 60,
                     observe=runtime.metrics.mitigation)


async def start_bot(settings: Settings, host: str = "0.0.0.0", sections: Sections | None = None,
                    clock: "Clock | None" = None) -> RunningBot:
    """Start the bot; `sections` are chatops.yaml's, parsed from `settings` when not given (tests);
    `clock`: the store's (tests move a FakeClock past escalation deadlines)."""
    from aiohttp import ClientError, web
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_sdk.errors import SlackApiError, SlackClientError

    import handlers
    from bot.runtime.runtime import Runtime
    from bot.runtime.server import build_server
    from bot.slack.answers import CommandAnswers
    from bot.slack.app import build_app, build_posting_client, build_web_client
    from bot.slack.poster import Poster
    from bot.state import keys
    from bot.state.clock import SYSTEM_CLOCK
    from bot.state.store import open_store
    from bot.state.worker import Worker
    from diagnostics.http_api import BackendError
    from handlers.alerts import webhook_handler

    if sections is None:
        sections = load_sections(settings)
    table = build_table(sections)
    validate_steps(sections.playbooks, table, settings.default_namespace,
                   settings.config_name)
    delivery, alerts = sections.delivery, sections.alerts
    clients = await Clients.build(settings)
    metrics = Metrics()
    runtime = Runtime(settings=settings, sections=sections, clients=clients, table=table, metrics=metrics,
                      store=open_store(settings.state_url, clock or SYSTEM_CLOCK))
    slack = build_web_client(settings, delivery.slack_timeout_seconds)
    poster = Poster(build_posting_client(settings, delivery.slack_timeout_seconds), alerts.post_interval,
                    store=runtime.store, reader=slack)
    worker = Worker(runtime.store, delivery, on_outcome=metrics.work_outcome,
                    expected=(SlackApiError, SlackClientError, ClientError, BackendError))
    worker.lane(keys.LANE_ALERTS, ALERT_LANE_CONCURRENCY)
    worker.lane(keys.LANE_INVESTIGATIONS, alerts.concurrency)
    worker.lane(keys.LANE_COMMANDS, delivery.command_concurrency)
    worker.lane(keys.LANE_ACTIONS, ACTION_LANE_CONCURRENCY)
    worker.lane(keys.LANE_TIMERS, ACTION_LANE_CONCURRENCY)
    worker.lane(keys.LANE_INCIDENTS, ACTION_LANE_CONCURRENCY)
    app = build_app(settings, slack)
    mitigations = build_mitigations(runtime, slack)
    threads = build_alert_threads(runtime, poster, worker, mitigations)
    answers = CommandAnswers(prefix=settings.command, default_namespace=settings.default_namespace,
                             table=runtime.table, context=runtime.context, store=runtime.store, poster=poster,
                             worker=worker, observe=metrics.command_answered)
    approvals = build_approvals(runtime, mitigations, poster, worker)
    incidents = build_incidents(runtime, threads, answers, poster, worker, mitigations)
    handlers.register_all(app, runtime, threads, answers, approvals, incidents)

    server = build_server(runtime, app, slack, alertmanager=webhook_handler(runtime, threads))
    # Handlers only record work and answer (milliseconds): a stop waits at most 2 s for open requests.
    runner = web.AppRunner(server, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    # Listening from here: /healthz answers (liveness), /readyz says 503 "starting" until the warm-up is done.
    await web.TCPSite(runner, host=host, port=settings.port).start()
    # Before any work is taken: what would otherwise load on the loop (or in a thread beside it) loads now.
    warm_up = await clients.warm_up()
    log.info("warmed up in %.2f s%s", warm_up, " (the Kubernetes client's classes)" if clients.kubernetes else "")
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
    runtime.starting = False
    return bot


async def serve(settings: Settings, sections: Sections) -> int:
    # Handled from the first moment: a SIGTERM while starting (a rollout replacing a pod that is
    # still warming up) lets the start finish, then stops cleanly, instead of killing the process.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bot = await start_bot(settings, sections=sections)
    if not stop.is_set():
        freeze_start_up_objects()
    await stop.wait()
    await bot.stop()
    _exit_if_held_up(EXIT_DEADLINE_SECONDS)
    return 0


def freeze_start_up_objects() -> None:
    """Once the bot is up: what start-up made (modules, the Kubernetes client's classes, the
    command table) lives as long as the process, yet every full garbage collection would walk it
    again, blocking the loop 0.1-0.3 s each time. Collect once, then leave it out of later
    collections (gc.freeze). The process's, not start_bot's: tests start many bots in one process."""
    started = time.monotonic()
    gc.collect()
    gc.freeze()
    log.info("%d objects made at start-up left out of garbage collection (%.2f s)", gc.get_freeze_count(),
             time.monotonic() - started)


# After the bot has stopped, the process exits within this many seconds whatever thread is left.
EXIT_DEADLINE_SECONDS = 3.0


def _exit_if_held_up(seconds: float) -> None:
    """The blocking pools' threads are daemon threads, so nothing should hold up the exit; but
    a library's non-daemon thread (the loop's default executor resolving a name, say) is joined at
    exit, however long it takes. Past `seconds`, log which threads are left and exit at once
    (os._exit, after flushing the logs): the bot has stopped and the store is closed."""
    def watch() -> None:
        time.sleep(seconds)
        left = [t.name for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon
                and t is not threading.main_thread()]
        log.warning("exit held up %g s after stopping (threads: %s); exiting now", seconds,
                    ", ".join(left) or "none")
        logging.shutdown()
        os._exit(0)

    threading.Thread(target=watch, name="exit-deadline", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
