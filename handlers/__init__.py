"""Slack and HTTP adapters: parse a payload, record the work in bot/, answer. Thin."""

from slack_bolt.async_app import AsyncApp

from bot.actions.approvals import Approvals
from bot.alerting.incidents import Incidents
from bot.alerting.threads import AlertThreads
from bot.runtime.runtime import Runtime
from bot.slack.answers import CommandAnswers


def register_all(app: AsyncApp, runtime: Runtime, threads: AlertThreads, answers: CommandAnswers,
                 approvals: Approvals, incidents: Incidents) -> None:
    from handlers import actions, alerts, commands, events

    commands.register(app, runtime, answers, approvals, incidents)
    actions.register(app, runtime, approvals, incidents)
    events.register(app, runtime, answers)
    alerts.register(app, runtime, threads)
