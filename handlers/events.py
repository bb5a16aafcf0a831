"""Events API listeners.

Slack retries any event that isn't answered with 2xx, and Bolt answers 404 for events no
listener matches, so every event the manifest subscribes to has a listener: app_mention
here, message in handlers/alerts.py. Each records its work and returns: the answer is a job.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.runtime.runtime import Runtime
from bot.slack.answers import CommandAnswers


def register(app: AsyncApp, runtime: Runtime, answers: CommandAnswers) -> None:
    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], body: dict[str, Any]) -> None:
        runtime.metrics.requests.labels(kind="event", outcome="ok").inc()
        await answers.accept_mention(event, str(body.get("event_id") or ""))
