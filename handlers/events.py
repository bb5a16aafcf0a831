"""Events API listeners.

Slack retries any event that isn't answered with 2xx, and Bolt answers 404 for events no
listener matches, so every event the manifest subscribes to has a listener: app_mention
here, message in handlers/alerts.py.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.say.async_say import AsyncSay

from bot.slack.mrkdwn import escape
from bot.runtime.runtime import Runtime


def register(app: AsyncApp, runtime: Runtime) -> None:
    command = runtime.settings.command

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: AsyncSay) -> None:
        runtime.metrics.requests.labels(kind="event", outcome="ok").inc()
        await say(
            text=f"Type `{escape(command)} help` to see the checks I can run.",
            thread_ts=event.get("thread_ts") or event.get("ts"),
        )
