"""Lines only one person sees, and permalinks: what approvals and incidents both tell people.

`tell` posts an ephemeral line (chat.postEphemeral, in a thread if given), falling back to the
interaction's response_url when Slack refuses it (the bot not in the channel); `permalink` asks
Slack for a message's link and says "" when it won't.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.errors import TemporaryError
from bot.slack.mrkdwn import truncate
from bot.slack.poster import Poster, slack_error

log = logging.getLogger(__name__)

RESPONSE_URL_TIMEOUT = 10
EPHEMERAL_LIMIT = 3000


async def tell(poster: Poster, channel: str, user: str, text: str, response_url: str = "",
               thread_ts: str = "") -> None:
    """A line only `user` sees: chat.postEphemeral (in the thread, if any), else the response_url."""
    text = truncate(text, EPHEMERAL_LIMIT)
    try:
        await poster.reader.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts or None)
        return
    except SlackApiError as e:
        log.info("ephemeral to %s in %s failed (%s); trying response_url", user, channel, slack_error(e))
    await respond(response_url, text)


async def respond(response_url: str, text: str) -> None:
    """An ephemeral line through an interaction's response_url (nothing without one)."""
    if not response_url:
        return
    answer = await AsyncWebhookClient(response_url, timeout=RESPONSE_URL_TIMEOUT).send_dict(
        {"response_type": "ephemeral", "replace_original": False, "text": truncate(text, EPHEMERAL_LIMIT)})
    if answer.status_code >= 500:
        raise TemporaryError(f"response_url answered HTTP {answer.status_code}")


async def permalink(poster: Poster, channel: str, ts: str) -> str:
    """A message's permalink, "" when Slack won't say (logged)."""
    try:
        answer = await poster.reader.chat_getPermalink(channel=channel, message_ts=ts)
    except SlackApiError as e:
        log.info("no permalink for %s in %s: %s", ts, channel, slack_error(e))
        return ""
    return str(answer.get("permalink") or "")
