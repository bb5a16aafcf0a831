"""Slack adapters: parse a payload, call bot/, render, post. Thin."""

from slack_bolt.async_app import AsyncApp

from bot.slack_app import Runtime


def register_all(app: AsyncApp, runtime: Runtime) -> None:
    from handlers import commands, events

    commands.register(app, runtime)
    events.register(app, runtime)
