"""Slack adapters: parse a payload, call bot/, render, post. Thin."""

from slack_bolt.async_app import AsyncApp

from bot.alerting.threads import AlertThreads
from bot.runtime.runtime import Runtime


def register_all(app: AsyncApp, runtime: Runtime, threads: AlertThreads) -> None:
    from handlers import alerts, commands, events

    commands.register(app, runtime)
    events.register(app, runtime)
    alerts.register(app, runtime, threads)
