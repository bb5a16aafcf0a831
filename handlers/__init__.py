"""Slack and HTTP adapters: parse a payload, record the work in bot/, answer. Thin."""

from slack_bolt.async_app import AsyncApp

from bot.alerting.threads import AlertThreads
from bot.runtime.runtime import Runtime
from bot.slack.answers import CommandAnswers


def register_all(app: AsyncApp, runtime: Runtime, threads: AlertThreads, answers: CommandAnswers) -> None:
    from handlers import alerts, commands, events

    commands.register(app, runtime, answers)
    events.register(app, runtime, answers)
    alerts.register(app, runtime, threads)
