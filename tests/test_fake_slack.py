"""The fake Slack behaves like Slack for the real slack_sdk clients, and slack_requests signs like Slack.

Everything here goes through slack_sdk's own AsyncWebClient / AsyncWebhookClient / SocketModeClient
(and slack_bolt's AsyncSocketModeHandler), so a fake that drifts from what those clients send or
expect fails here rather than in a bot test.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests import slack_requests
from tests.fakes.slack import FakeSlack

EVENT = {"event_type": "alert_opened", "event_payload": {"fingerprint": "abc123", "attempt": 1}}


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def texts(response: Any) -> list[str]:
    return [m["text"] for m in response["messages"]]


@pytest.fixture
async def client(fake_slack: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    client = AsyncWebClient(base_url=fake_slack.api_url, token=fake_slack.bot_token)
    yield client


async def api_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


# --- messages ---------------------------------------------------------------------------------------


async def test_post_message_is_recorded_with_decoded_blocks(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    blocks = [section("*disk* at 91%"), {"type": "divider"}]
    response = await client.chat_postMessage(channel="C0OPS", text="disk at 91%", blocks=blocks)

    assert response["channel"] == "C0OPS"
    assert response["message"]["blocks"] == blocks
    [call] = fake_slack.calls
    assert (call.method, call.ok, call.params["blocks"]) == ("chat.postMessage", True, blocks)
    assert call.headers["Authorization"] == f"Bearer {fake_slack.bot_token}"
    [message] = fake_slack.messages("C0OPS")
    assert (message.ts, message.text, message.blocks) == (response["ts"], "disk at 91%", blocks)


async def test_post_message_ts_is_unique_and_increasing(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    stamps = [(await client.chat_postMessage(channel="C0OPS", text=str(i)))["ts"] for i in range(3)]

    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)  # Slack's "seconds.micros" shape
    assert sorted(stamps, key=float) == stamps and len(set(stamps)) == 3
    assert [m.text for m in fake_slack.messages()] == ["0", "1", "2"]


async def test_form_encoded_post_with_json_string_blocks_and_token_field_is_decoded(
    fake_slack: FakeSlack
) -> None:
    # What curl, older clients and the sync WebClient with data= send: form fields, blocks as JSON text.
    blocks = [section("from a form")]
    form = {"token": fake_slack.bot_token, "channel": "C0OPS", "text": "t", "blocks": json.dumps(blocks)}
    async with aiohttp.ClientSession() as session:
        async with session.post(fake_slack.api_url + "chat.postMessage", data=form) as response:
            body = await response.json()

    assert body["ok"] is True
    assert fake_slack.calls[0].params["blocks"] == blocks
    assert "token" not in fake_slack.calls[0].params  # never recorded next to the message fields


async def test_more_than_50_blocks_is_rejected_like_slack(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    await client.chat_postMessage(channel="C0OPS", text="ok", blocks=[section("x")] * 50)

    too_many = [section("x")] * 51
    error = await api_error(client.chat_postMessage(channel="C0OPS", text="too many", blocks=too_many))

    assert error.response["error"] == "invalid_blocks"
    assert "no more than 50 items" in error.response["response_metadata"]["messages"][0]
    assert [m.text for m in fake_slack.messages()] == ["ok"]


@pytest.mark.parametrize(
    ("block", "pointer"),
    [
        (section("x" * 3001), "/blocks/0/text/text"),
        ({"type": "section", "fields": [{"type": "mrkdwn", "text": "y" * 2001}]}, "/blocks/0/fields/0/text"),
        ({"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}, "/blocks/0/text/text"),
        (section(""), "/blocks/0/text/text"),
    ],
    ids=["section-text-3001", "field-2001", "header-151", "empty-section-text"],
)
async def test_block_text_over_slack_limits_is_invalid_blocks(
    client: AsyncWebClient, block: dict[str, Any], pointer: str
) -> None:
    error = await api_error(client.chat_postMessage(channel="C0OPS", text="t", blocks=[block]))

    assert error.response["error"] == "invalid_blocks"
    assert pointer in error.response["response_metadata"]["messages"][0]


async def test_block_text_exactly_at_slack_limits_is_accepted(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    blocks = [
        section("x" * 3000),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "y" * 2000}] * 10},
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 150}},
    ]
    await client.chat_postMessage(channel="C0OPS", text="t", blocks=blocks)

    assert fake_slack.messages()[0].blocks == blocks


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_message_without_text_blocks_or_attachments_is_no_text(client: AsyncWebClient) -> None:
    error = await api_error(client.chat_postMessage(channel="C0OPS", text=""))

    assert error.response["error"] == "no_text"


async def test_text_over_40000_chars_is_msg_too_long(client: AsyncWebClient) -> None:
    await client.chat_postMessage(channel="C0OPS", text="x" * 40_000)

    error = await api_error(client.chat_postMessage(channel="C0OPS", text="x" * 40_001))

    assert error.response["error"] == "msg_too_long"


async def test_declared_unknown_channel_is_channel_not_found(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    fake_slack.unknown_channels.add("C0GONE")

    error = await api_error(client.chat_postMessage(channel="C0GONE", text="hello?"))

    assert error.response["error"] == "channel_not_found"
    assert (await client.chat_postMessage(channel="C0ANYTHING", text="hi"))["ok"]


async def test_channel_the_bot_is_not_in_answers_not_in_channel(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    fake_slack.not_in_channel.add("C0PRIVATE")

    error = await api_error(client.chat_postMessage(channel="C0PRIVATE", text="hi"))

    assert error.response["error"] == "not_in_channel"
    assert fake_slack.calls[0].error == "not_in_channel" and fake_slack.messages() == []


async def test_post_ephemeral_needs_a_user_and_is_recorded(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    response = await client.chat_postEphemeral(channel="C0OPS", user="U0ALICE", text="only you")
    no_user = {"channel": "C0OPS", "text": "nobody"}
    error = await api_error(client.api_call("chat.postEphemeral", json=no_user))

    assert response["message_ts"]
    assert error.response["error"] == "invalid_arguments"
    assert [(e.recipient, e.text) for e in fake_slack.ephemerals] == [("U0ALICE", "only you")]
    assert fake_slack.messages() == []  # ephemerals are not channel history


async def test_chat_update_edits_the_stored_message(fake_slack: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C0OPS", text="running", blocks=[section("running…")])

    updated = await client.chat_update(
        channel="C0OPS", ts=posted["ts"], text="done", blocks=[section("done ✅")]
    )

    assert updated["ts"] == posted["ts"]
    [message] = fake_slack.messages("C0OPS")
    assert (message.text, message.blocks, message.edits) == ("done", [section("done ✅")], 1)


async def test_chat_update_of_unknown_ts_is_message_not_found(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C0OPS", text="here")

    wrong_ts = await api_error(client.chat_update(channel="C0OPS", ts="1.000001", text="x"))
    wrong_channel = await api_error(client.chat_update(channel="C0OTHER", ts=posted["ts"], text="x"))

    assert wrong_ts.response["error"] == wrong_channel.response["error"] == "message_not_found"
    assert fake_slack.messages()[0].text == "here"


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_chat_update_is_validated_like_a_new_message(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C0OPS", text="here")

    error = await api_error(client.chat_update(channel="C0OPS", ts=posted["ts"], blocks=[section("x")] * 51))

    assert error.response["error"] == "invalid_blocks"
    assert fake_slack.messages()[0].edits == 0


async def test_conversations_info_answers_a_minimal_channel(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    fake_slack.channel_names["C0OPS"] = "ops"

    info = await client.conversations_info(channel="C0OPS")

    channel = info["channel"]
    assert (channel["id"], channel["name"], channel["is_member"]) == ("C0OPS", "ops", True)

# --- channel names and IDs ------------------------------------------------------------------------


async def test_post_to_a_channel_name_is_stored_and_answered_under_the_channel_id(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    with_hash = await client.chat_postMessage(channel="#alerts-critical", text="one")
    bare = await client.chat_postMessage(channel="alerts-critical", text="two")

    channel = fake_slack.channel_id("#alerts-critical")
    assert channel.startswith("C") and with_hash["channel"] == bare["channel"] == channel
    assert fake_slack.channel_names[channel] == "alerts-critical"
    assert [m.text for m in fake_slack.messages(channel)] == ["one", "two"]
    assert fake_slack.messages("#alerts-critical") == fake_slack.messages("alerts-critical") == fake_slack.messages()
    assert {m.channel for m in fake_slack.messages()} == {channel}
    assert fake_slack.calls[0].params["channel"] == "#alerts-critical"  # recorded as the client sent it


async def test_methods_other_than_posting_need_the_channel_id_like_slack(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="#ops", text="here")

    by_name = [
        await api_error(client.chat_update(channel="#ops", ts=posted["ts"], text="x")),
        await api_error(client.conversations_history(channel="#ops")),
        await api_error(client.conversations_replies(channel="#ops", ts=posted["ts"])),
        await api_error(client.conversations_info(channel="#ops")),
        await api_error(client.files_upload_v2(channel="#ops", content=b"x", filename="x.txt")),
    ]
    updated = await client.chat_update(channel=posted["channel"], ts=posted["ts"], text="edited")

    assert [e.response["error"] for e in by_name] == ["channel_not_found"] * 5
    assert updated["channel"] == posted["channel"]
    assert [m.text for m in fake_slack.messages("#ops")] == ["edited"] and fake_slack.files == []


@pytest.mark.parametrize("arranged_as", ["#name", "ID"])
async def test_unknown_and_not_in_channel_arrangements_take_either_spelling(
    fake_slack: FakeSlack, client: AsyncWebClient, arranged_as: str
) -> None:
    gone, private = fake_slack.channel_id("#gone"), fake_slack.channel_id("#private")
    fake_slack.unknown_channels.add("#gone" if arranged_as == "#name" else gone)
    fake_slack.not_in_channel.add("#private" if arranged_as == "#name" else private)

    posts = [
        await api_error(client.chat_postMessage(channel=c, text="hi")) for c in ("#gone", gone, "#private", private)
    ]
    history = await api_error(client.conversations_history(channel=private))
    info = await client.conversations_info(channel=private)

    assert [e.response["error"] for e in posts] == ["channel_not_found"] * 2 + ["not_in_channel"] * 2
    assert history.response["error"] == "not_in_channel"
    assert info["channel"]["is_member"] is False and fake_slack.messages() == []


# --- conversations.history and conversations.replies -------------------------------------------------


async def test_history_lists_top_level_messages_newest_first_without_thread_replies(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    root = await client.chat_postMessage(channel="C0OPS", text="root")
    await client.chat_postMessage(channel="C0OPS", text="reply", thread_ts=root["ts"])
    broadcast = await client.chat_postMessage(
        channel="C0OPS", text="also in the channel", thread_ts=root["ts"], reply_broadcast=True
    )
    await client.chat_postMessage(channel="C0OPS", text="later")
    await client.chat_postMessage(channel="C0OTHER", text="elsewhere")

    history = await client.conversations_history(channel="C0OPS")

    assert texts(history) == ["later", "also in the channel", "root"]
    assert history["has_more"] is False and history.get("response_metadata") is None
    listed_root, listed_broadcast = history["messages"][2], history["messages"][1]
    assert (listed_root["thread_ts"], listed_root["reply_count"], listed_root["latest_reply"]) == (
        root["ts"], 2, broadcast["ts"]
    )
    assert listed_root["reply_users"] == ["U0BOT"] and listed_root["user"] == "U0BOT"
    assert (listed_broadcast["subtype"], listed_broadcast["thread_ts"]) == ("thread_broadcast", root["ts"])


async def test_history_pages_with_has_more_and_next_cursor(fake_slack: FakeSlack, client: AsyncWebClient) -> None:
    for i in range(5):
        await client.chat_postMessage(channel="C0OPS", text=str(i))

    first = await client.conversations_history(channel="C0OPS", limit=2)
    second = await client.conversations_history(
        channel="C0OPS", limit=2, cursor=first["response_metadata"]["next_cursor"]
    )
    pages = [texts(page) async for page in await client.conversations_history(channel="C0OPS", limit=2)]

    assert (texts(first), first["has_more"], texts(second), second["has_more"]) == (["4", "3"], True, ["2", "1"], True)
    assert pages == [["4", "3"], ["2", "1"], ["0"]]  # slack_sdk's own pagination follows next_cursor


async def test_history_limit_defaults_to_100_and_is_at_most_999(fake_slack: FakeSlack, client: AsyncWebClient) -> None:
    for i in range(1000):
        fake_slack.add_message("C0OPS", f"m{i}")

    default = await client.conversations_history(channel="C0OPS")
    most = await client.conversations_history(channel="C0OPS", limit=5000)

    assert (len(default["messages"]), default["has_more"]) == (100, True)
    assert (len(most["messages"]), most["has_more"]) == (999, True)
    assert default["messages"][0]["text"] == "m999"


async def test_history_between_oldest_and_latest_inclusive_or_not(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    a, b, c = [(await client.chat_postMessage(channel="C0OPS", text=t))["ts"] for t in "abc"]

    between = await client.conversations_history(channel="C0OPS", oldest=a, latest=c)
    inclusive = await client.conversations_history(channel="C0OPS", oldest=a, latest=c, inclusive=True)
    after_b = await client.conversations_history(channel="C0OPS", oldest=b)
    errors = [
        await api_error(client.conversations_history(channel="C0OPS", oldest="yesterday")),
        await api_error(client.conversations_history(channel="C0OPS", latest="now")),
        await api_error(client.conversations_history(channel="C0OPS", cursor="not-a-cursor")),
    ]

    assert (texts(between), texts(inclusive), texts(after_b)) == (["b"], ["c", "b", "a"], ["c"])
    assert [e.response["error"] for e in errors] == ["invalid_ts_oldest", "invalid_ts_latest", "invalid_cursor"]


async def test_replies_give_the_parent_then_its_replies_oldest_first(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    root = await client.chat_postMessage(channel="C0OPS", text="root")
    first = await client.chat_postMessage(channel="C0OPS", text="first", thread_ts=root["ts"])
    await client.chat_postMessage(channel="C0OPS", text="unrelated")
    await client.chat_postMessage(channel="C0OPS", text="second", thread_ts=root["ts"])
    alone = await client.chat_postMessage(channel="C0OPS", text="alone")

    thread = await client.conversations_replies(channel="C0OPS", ts=root["ts"])
    from_a_reply = await client.conversations_replies(channel="C0OPS", ts=first["ts"])
    unthreaded = await client.conversations_replies(channel="C0OPS", ts=alone["ts"])
    page = await client.conversations_replies(channel="C0OPS", ts=root["ts"], limit=2)
    rest = await client.conversations_replies(
        channel="C0OPS", ts=root["ts"], limit=2, cursor=page["response_metadata"]["next_cursor"]
    )
    unknown = await api_error(client.conversations_replies(channel="C0OPS", ts="1.000001"))

    assert texts(thread) == ["root", "first", "second"] and from_a_reply["messages"] == thread["messages"]
    assert texts(unthreaded) == ["alone"]
    assert (texts(page), page["has_more"]) == (["root", "first"], True)
    assert (texts(rest), rest["has_more"]) == (["second"], False)
    assert thread["messages"][0]["reply_count"] == 2
    assert (thread["messages"][1]["thread_ts"], thread["messages"][1]["parent_user_id"]) == (root["ts"], "U0BOT")
    assert unknown.response["error"] == "thread_not_found"


async def test_messages_someone_else_posted_can_be_arranged_and_are_listed(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    question = fake_slack.add_message("#ops", "is prod down?", user="U0ALICE")
    fake_slack.add_message("#ops", "looking", user="U0BOB", thread_ts=question.ts)

    history = await client.conversations_history(channel=fake_slack.channel_id("#ops"))
    thread = await client.conversations_replies(channel=question.channel, ts=question.ts)

    [listed] = history["messages"]
    assert (listed["user"], listed["text"], listed["reply_users"]) == ("U0ALICE", "is prod down?", ["U0BOB"])
    assert texts(thread) == ["is prod down?", "looking"]
    assert [c.method for c in fake_slack.calls] == ["conversations.history", "conversations.replies"]


# --- message metadata ----------------------------------------------------------------------------------


async def test_metadata_is_stored_and_listed_only_with_include_all_metadata(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C0OPS", text="alert", metadata=EVENT)
    await client.chat_postMessage(channel="C0OPS", text="reply", thread_ts=posted["ts"], metadata=EVENT)

    plain = await client.conversations_history(channel="C0OPS")
    full = await client.conversations_history(channel="C0OPS", include_all_metadata=True)
    thread = await client.conversations_replies(channel="C0OPS", ts=posted["ts"], include_all_metadata=True)

    assert fake_slack.messages("C0OPS")[0].metadata == EVENT
    assert "metadata" not in plain["messages"][0] and "metadata" not in posted["message"]
    assert full["messages"][0]["metadata"] == EVENT
    assert [m["metadata"] for m in thread["messages"]] == [EVENT, EVENT]


@pytest.mark.parametrize(
    "metadata",
    [
        "not json",
        ["alert_opened", {}],
        {"event_type": "alert_opened"},
        {"event_payload": {"fingerprint": "abc123"}},
        {"event_type": "", "event_payload": {}},
        {"event_type": 7, "event_payload": {}},
        {"event_type": "alert_opened", "event_payload": "abc123"},
        {},
    ],
    ids=["not-json", "array", "no-payload", "no-type", "empty-type", "number-type", "string-payload", "empty"],
)
async def test_malformed_metadata_is_invalid_metadata_format(
    fake_slack: FakeSlack, client: AsyncWebClient, metadata: Any
) -> None:
    body = {"channel": "C0OPS", "text": "t", "metadata": metadata}

    error = await api_error(client.api_call("chat.postMessage", json=body))

    assert error.response["error"] == "invalid_metadata_format"
    assert fake_slack.messages() == []


async def test_chat_update_keeps_replaces_or_removes_metadata_like_slack(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    ts = (await client.chat_postMessage(channel="C0OPS", text="v1", metadata=EVENT))["ts"]
    [message] = fake_slack.messages()
    resolved = {"event_type": "alert_resolved", "event_payload": {"fingerprint": "abc123"}}

    await client.chat_update(channel="C0OPS", ts=ts, text="v2")
    kept = message.metadata
    await client.chat_update(channel="C0OPS", ts=ts, text="v3", metadata=resolved)
    replaced = message.metadata
    bad = await api_error(client.chat_update(channel="C0OPS", ts=ts, text="v4", metadata={"event_type": "x"}))
    text_after_bad = message.text
    await client.chat_update(channel="C0OPS", ts=ts, text="v5", metadata={})

    assert (kept, replaced, bad.response["error"], text_after_bad) == (EVENT, resolved, "invalid_metadata_format", "v3")
    assert (message.metadata, message.text, message.edits) == (None, "v5", 3)


# --- auth -----------------------------------------------------------------------------------------------


async def test_auth_test_answers_the_bot_identity(fake_slack: FakeSlack, client: AsyncWebClient) -> None:
    response = await client.auth_test()

    assert (response["user_id"], response["bot_id"], response["team_id"]) == ("U0BOT", "B0BOT", "T0TEST")


async def test_wrong_token_is_invalid_auth(fake_slack: FakeSlack) -> None:
    client = AsyncWebClient(base_url=fake_slack.api_url, token="xoxb-stolen")

    error = await api_error(client.chat_postMessage(channel="C0OPS", text="hi"))

    assert error.response.status_code == 200  # Slack answers API errors with 200
    assert error.response["error"] == "invalid_auth"
    assert fake_slack.messages() == []


async def test_missing_token_is_not_authed(fake_slack: FakeSlack) -> None:
    error = await api_error(AsyncWebClient(base_url=fake_slack.api_url).auth_test())

    assert error.response["error"] == "not_authed"


async def test_app_and_bot_tokens_only_work_for_their_own_methods(fake_slack: FakeSlack) -> None:
    as_app = AsyncWebClient(base_url=fake_slack.api_url, token=fake_slack.app_token)
    as_bot = AsyncWebClient(base_url=fake_slack.api_url, token=fake_slack.bot_token)

    opened = await as_app.apps_connections_open(app_token=fake_slack.app_token)
    bot_opens = await api_error(as_bot.apps_connections_open(app_token=fake_slack.bot_token))
    app_posts = await api_error(as_app.chat_postMessage(channel="C0OPS", text="hi"))

    assert opened["url"] == fake_slack.socket_url
    assert bot_opens.response["error"] == app_posts.response["error"] == "not_allowed_token_type"


async def test_unknown_method_answers_unknown_method(client: AsyncWebClient) -> None:
    error = await api_error(client.api_call("chat.scheduleTeleport", json={"channel": "C0OPS"}))

    assert error.response["error"] == "unknown_method"


# --- rate limits --------------------------------------------------------------------------------------------


async def test_ratelimited_call_answers_429_with_retry_after(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    fake_slack.rate_limit("chat.postMessage", times=1, retry_after=7)

    error = await api_error(client.chat_postMessage(channel="C0OPS", text="hi"))

    assert error.response.status_code == 429
    assert error.response.headers["Retry-After"] == "7"
    assert error.response["error"] == "ratelimited"
    assert fake_slack.ratelimited_count == 1 and fake_slack.messages() == []


async def test_429_is_retried_by_rate_limit_retry_handler_and_then_succeeds(fake_slack: FakeSlack) -> None:
    fake_slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    client = AsyncWebClient(
        base_url=fake_slack.api_url,
        token=fake_slack.bot_token,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )

    response = await client.chat_postMessage(channel="C0OPS", text="eventually")

    assert response["ok"]
    first, second = fake_slack.calls
    assert (first.status, first.error, second.ok) == (429, "ratelimited", True)
    assert second.time - first.time >= 1.0  # the client honoured Retry-After
    assert [m.text for m in fake_slack.messages()] == ["eventually"]


async def test_pacing_rejects_a_second_post_to_the_same_channel_too_soon(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    fake_slack.pace_per_channel(min_interval=0.2, retry_after=1)

    await client.chat_postMessage(channel="C0A", text="1")
    too_soon = await api_error(client.chat_postMessage(channel="C0A", text="2"))
    await client.chat_postMessage(channel="C0B", text="other channel")
    await asyncio.sleep(0.2)
    await client.chat_postMessage(channel="C0A", text="3")

    assert too_soon.response.status_code == 429
    assert fake_slack.ratelimited_count == 1
    assert [m.text for m in fake_slack.messages("C0A")] == ["1", "3"]


# --- files ----------------------------------------------------------------------------------------


async def test_files_upload_v2_records_bytes_channel_and_thread(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C0OPS", text="report follows")

    response = await client.files_upload_v2(
        channel="C0OPS",
        content=b"pod-1 CrashLoopBackOff\n",
        filename="pods.txt",
        title="Pods",
        thread_ts=posted["ts"],
        initial_comment="full list",
    )

    [f] = fake_slack.files
    assert response["file"]["id"] == f.id
    assert (f.filename, f.title, f.content) == ("pods.txt", "Pods", b"pod-1 CrashLoopBackOff\n")
    assert (f.channel, f.thread_ts, f.initial_comment) == ("C0OPS", posted["ts"], "full list")
    assert [c.method for c in fake_slack.calls][1:] == [
        "files.getUploadURLExternal", "file_upload", "files.completeUploadExternal"
    ]


async def test_complete_upload_of_a_file_never_uploaded_is_rejected(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    issued = await client.files_getUploadURLExternal(filename="x.txt", length=3)  # bytes never sent

    complete = client.files_completeUploadExternal
    not_sent = await api_error(complete(files=[{"id": issued["file_id"]}], channel_id="C0OPS"))
    unknown = await api_error(complete(files=[{"id": "F0NOPE"}], channel_id="C0OPS"))

    assert not_sent.response["error"] == unknown.response["error"] == "file_not_found"
    assert fake_slack.files == []


# --- response_url -------------------------------------------------------------------------------------------


async def test_response_url_posts_are_recorded(fake_slack: FakeSlack) -> None:
    url = fake_slack.response_url("cmd-1")
    webhook = AsyncWebhookClient(url)  # what slack_bolt's respond() uses

    response = await webhook.send(text="on it", response_type="in_channel", replace_original=False)

    assert response.status_code == 200
    [post] = fake_slack.response_posts(url)
    assert (post.key, post.text, post.response_type) == ("cmd-1", "on it", "in_channel")
    assert post.replace_original is False
    assert fake_slack.response_posts("other") == []


async def test_response_url_posts_are_validated_like_messages(fake_slack: FakeSlack) -> None:
    webhook = AsyncWebhookClient(fake_slack.response_url())

    too_many = await webhook.send(text="t", blocks=[section("x")] * 51)
    empty = await webhook.send(text="")

    assert (too_many.status_code, json.loads(too_many.body)["error"]) == (400, "invalid_blocks")
    assert json.loads(empty.body)["error"] == "no_text"
    assert fake_slack.response_posts() == []


async def test_response_url_accepts_only_five_posts_like_slack(fake_slack: FakeSlack) -> None:
    webhook = AsyncWebhookClient(fake_slack.response_url())

    statuses = [(await webhook.send(text=f"step {i}")).status_code for i in range(6)]

    assert statuses == [200] * 5 + [404]

# --- outages and faults --------------------------------------------------------------------------------


async def test_an_outage_answers_every_method_and_carries_nothing_out_until_recover(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    fake_slack.outage("503")

    posting = await api_error(client.chat_postMessage(channel="C0OPS", text="during"))
    auth = await api_error(client.auth_test())
    answer = await AsyncWebhookClient(fake_slack.response_url("cmd")).send(text="during")
    fake_slack.recover()
    after = await client.chat_postMessage(channel="C0OPS", text="after")

    assert (posting.response.status_code, posting.response["error"]) == (503, "service_unavailable")
    assert auth.response.status_code == answer.status_code == 503
    assert [(c.method, c.ok, c.status, c.fault) for c in fake_slack.calls] == [
        ("chat.postMessage", False, 503, "outage"),
        ("auth.test", False, 503, "outage"),
        ("response_url", False, 503, "outage"),
        ("chat.postMessage", True, 200, None),
    ]
    assert after["ok"] and [m.text for m in fake_slack.messages()] == ["after"]
    assert fake_slack.response_posts() == []


async def test_an_outage_of_named_methods_leaves_the_others_alone(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    fake_slack.outage("500", methods=["chat.postMessage"])

    posting = await api_error(client.chat_postMessage(channel="C0OPS", text="x"))
    info = await client.conversations_info(channel="C0OPS")

    assert (posting.response.status_code, posting.response["error"]) == (500, "fatal_error")
    assert info["ok"] and fake_slack.messages() == []


async def test_a_429_outage_sends_retry_after_until_recover(fake_slack: FakeSlack, client: AsyncWebClient) -> None:
    fake_slack.outage("429", retry_after=1)
    retrying = AsyncWebClient(
        base_url=fake_slack.api_url,
        token=fake_slack.bot_token,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=5)],
    )

    refused = await api_error(client.chat_postMessage(channel="C0OPS", text="no"))
    posting = asyncio.create_task(retrying.chat_postMessage(channel="C0OPS", text="eventually"))
    await fake_slack.wait_for("chat.postMessage", ok=False, count=2)  # the retrying client's first try
    fake_slack.recover()
    posted = await asyncio.wait_for(posting, 5)

    assert (refused.response.status_code, refused.response.headers["Retry-After"]) == (429, "1")
    assert refused.response["error"] == "ratelimited"
    assert posted["ok"] and [m.text for m in fake_slack.messages()] == ["eventually"]


async def test_a_hang_holds_the_request_until_recover_then_answers_it_normally(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    fake_slack.outage("hang")
    posting = asyncio.create_task(client.chat_postMessage(channel="C0OPS", text="held"))

    [held] = await fake_slack.wait_for("chat.postMessage", ok=False)
    assert fake_slack.held == [held] and (held.error, held.status, held.fault) == ("held", 0, "outage")
    assert not posting.done() and fake_slack.messages() == []
    fake_slack.recover()
    posted = await asyncio.wait_for(posting, 5)

    assert posted["ok"] and fake_slack.held == []
    assert fake_slack.calls == [held] and (held.ok, held.error, held.fault) == (True, None, None)
    assert [m.text for m in fake_slack.messages()] == ["held"]


async def test_a_client_that_gives_up_on_a_hang_times_out_and_nothing_is_carried_out(
    fake_slack: FakeSlack,
) -> None:
    fake_slack.outage("hang")
    client = AsyncWebClient(base_url=fake_slack.api_url, token=fake_slack.bot_token, timeout=1)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await client.chat_postMessage(channel="C0OPS", text="never")
    gave_up_after = time.monotonic() - started
    [abandoned] = await fake_slack.wait_for(lambda c: c.error == "abandoned", ok=False)
    fake_slack.recover()
    await client.auth_test()  # the fake has answered something since

    assert 0.9 < gave_up_after < 3
    assert (abandoned.method, abandoned.status) == ("chat.postMessage", 0)
    assert fake_slack.held == [] and fake_slack.messages() == []


async def test_stopping_the_fake_answers_held_requests_without_carrying_them_out() -> None:
    async with FakeSlack() as fake:
        client = AsyncWebClient(base_url=fake.api_url, token=fake.bot_token)
        fake.outage("hang")
        posting = asyncio.create_task(client.chat_postMessage(channel="C0OPS", text="x"))
        await fake.wait_for("chat.postMessage", ok=False)

    error = await api_error(posting)

    assert error.response.status_code == 503 and fake.messages() == []


async def test_a_lost_answer_stores_the_message_once_and_the_client_sees_the_error(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    fake_slack.lose_answers("chat.postMessage")

    error = await api_error(client.chat_postMessage(channel="C0OPS", text="posted anyway"))
    after = await client.chat_postMessage(channel="C0OPS", text="answered")

    assert (error.response.status_code, error.response["error"]) == (503, "service_unavailable")
    lost, answered = fake_slack.calls
    assert (lost.ok, lost.status, lost.fault, answered.ok) == (False, 503, "lost_answer", True)
    assert after["ok"] and [m.text for m in fake_slack.messages("C0OPS")] == ["posted anyway", "answered"]


async def test_a_client_that_retries_a_lost_answer_posts_twice(fake_slack: FakeSlack) -> None:
    # The bot's own client retries 500/503 (AsyncServerErrorRetryHandler): this is what it risks.
    fake_slack.lose_answers("chat.postMessage", status=500)
    client = AsyncWebClient(
        base_url=fake_slack.api_url,
        token=fake_slack.bot_token,
        retry_handlers=[AsyncServerErrorRetryHandler(max_retry_count=1)],
    )

    posted = await client.chat_postMessage(channel="C0OPS", text="alert")

    assert posted["ok"]
    assert [(c.status, c.error) for c in fake_slack.calls] == [(500, "fatal_error"), (200, None)]
    assert [m.text for m in fake_slack.messages()] == ["alert", "alert"]


async def test_a_lost_answer_can_hang_until_the_client_gives_up(fake_slack: FakeSlack) -> None:
    fake_slack.lose_answers("chat.postMessage", status="hang")
    client = AsyncWebClient(base_url=fake_slack.api_url, token=fake_slack.bot_token, timeout=1)

    with pytest.raises(TimeoutError):
        await client.chat_postMessage(channel="C0OPS", text="slow")
    [call] = await fake_slack.wait_for(lambda c: c.error == "abandoned", ok=False)

    assert call.fault == "lost_answer" and [m.text for m in fake_slack.messages()] == ["slow"]


async def test_fail_answers_the_error_without_doing_anything(fake_slack: FakeSlack, client: AsyncWebClient) -> None:
    fake_slack.fail("chat.postMessage", "internal_error", times=2)

    errors = [await api_error(client.chat_postMessage(channel="C0OPS", text=f"try {i}")) for i in range(2)]
    posted = await client.chat_postMessage(channel="C0OPS", text="try 2")

    assert [(e.response.status_code, e.response["error"]) for e in errors] == [(200, "internal_error")] * 2
    assert [c.fault for c in fake_slack.calls] == ["fail", "fail", None]
    assert "chat.postMessage error=internal_error [fail]" in fake_slack.describe_calls()
    assert posted["ok"] and [m.text for m in fake_slack.messages()] == ["try 2"]


def test_arranging_a_fault_for_a_method_the_fake_does_not_serve_is_refused(fake_slack: FakeSlack) -> None:
    with pytest.raises(ValueError, match="no method 'chat.postmessage'"):
        fake_slack.fail("chat.postmessage", "internal_error")
    with pytest.raises(ValueError, match="no method 'chat.delete'"):
        fake_slack.outage("503", methods=["chat.postMessage", "chat.delete"])
    with pytest.raises(ValueError, match="outage mode"):
        fake_slack.outage("502")


async def test_reset_ends_the_outage_and_pending_faults(fake_slack: FakeSlack, client: AsyncWebClient) -> None:
    fake_slack.outage("503")
    fake_slack.fail("auth.test", "internal_error")
    fake_slack.lose_answers("chat.postMessage")

    fake_slack.reset()

    assert (await client.auth_test())["ok"] and (await client.chat_postMessage(channel="C0OPS", text="x"))["ok"]
    assert [c.ok for c in fake_slack.calls] == [True, True]


# --- wait_for -------------------------------------------------------------------------------------


async def test_wait_for_returns_calls_recorded_after_it_started(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    async def post_later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel="C0OPS", text="first")
        await client.chat_postMessage(channel="C0OPS", text="second")

    task = asyncio.create_task(post_later())
    calls = await fake_slack.wait_for(lambda c: c.params.get("channel") == "C0OPS", timeout=2, count=2)
    await task

    assert [c.params["text"] for c in calls] == ["first", "second"]


async def test_wait_for_ignores_failed_calls_and_times_out_listing_what_was_recorded(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    await client.chat_postMessage(channel="C0OPS", text="hello there")
    await api_error(client.chat_update(channel="C0OPS", ts="1.000001", text="x"))

    started = time.monotonic()
    with pytest.raises(AssertionError) as info:
        await fake_slack.wait_for("chat.update", timeout=0.2)

    assert time.monotonic() - started < 1
    message = str(info.value)
    assert "'chat.update'" in message
    assert "chat.postMessage ok channel='C0OPS'" in message and "text='hello there'" in message
    assert "chat.update error=message_not_found" in message


async def test_wait_for_message_returns_the_nth_message_in_a_channel(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    async def post_later() -> None:
        await asyncio.sleep(0.05)
        root = await client.chat_postMessage(channel="#ops", text="first")
        await client.chat_postMessage(channel="C0ELSEWHERE", text="not here")
        await client.chat_postMessage(channel="#ops", text="reply", thread_ts=root["ts"])

    task = asyncio.create_task(post_later())
    second = await fake_slack.wait_for_message("#ops", 2, timeout=2)
    reply = await fake_slack.wait_for_message(where=lambda m: m.thread_ts is not None)
    await task

    assert (second.text, second.channel) == ("reply", fake_slack.channel_id("#ops"))
    assert reply is second


async def test_wait_for_message_times_out_listing_what_is_stored(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    await client.chat_postMessage(channel="C0OPS", text="only one")

    with pytest.raises(AssertionError) as info:
        await fake_slack.wait_for_message("C0OPS", 2, timeout=0.2)

    assert "message #2 in C0OPS" in str(info.value) and "'only one'" in str(info.value)


async def test_reset_forgets_records_and_arrangements(fake_slack: FakeSlack, client: AsyncWebClient) -> None:
    fake_slack.unknown_channels.add("C0OPS")
    await api_error(client.chat_postMessage(channel="C0OPS", text="x"))

    fake_slack.reset()
    await client.chat_postMessage(channel="C0OPS", text="y")

    assert [c.params["text"] for c in fake_slack.calls] == ["y"]
    assert [m.text for m in fake_slack.messages()] == ["y"]


# --- Socket Mode ----------------------------------------------------------------------------------


@pytest.fixture
async def socket_client(fake_slack: FakeSlack) -> AsyncIterator[SocketModeClient]:
    client = SocketModeClient(
        app_token=fake_slack.app_token,
        web_client=AsyncWebClient(base_url=fake_slack.api_url, token=fake_slack.bot_token),
    )
    yield client
    await client.close()


async def test_socket_mode_client_gets_hello_and_its_ack_is_returned(
    fake_slack: FakeSlack, socket_client: SocketModeClient
) -> None:
    received: list[dict[str, Any]] = []

    async def on_message(client: Any, message: dict[str, Any], raw: str | None) -> None:
        received.append(message)

    async def on_request(client: SocketModeClient, request: SocketModeRequest) -> None:
        text = request.payload["text"]
        response = SocketModeResponse(request.envelope_id, {"text": f"got {text}"})
        await client.send_socket_mode_response(response)

    socket_client.message_listeners.append(on_message)
    socket_client.socket_mode_request_listeners.append(on_request)
    await socket_client.connect()

    ack = await fake_slack.socket_send("slash_commands", {"command": "/ops", "text": "status"}, timeout=2)

    assert ack["payload"] == {"text": "got status"}
    assert received[0]["type"] == "hello" and received[0]["connection_info"]["app_id"] == "A0TEST"
    envelope = received[1]
    assert (envelope["type"], envelope["accepts_response_payload"], envelope["envelope_id"]) == (
        "slash_commands", True, ack["envelope_id"]
    )
    assert fake_slack.calls[0].method == "apps.connections.open"


async def test_socket_disconnect_makes_the_client_reconnect(
    fake_slack: FakeSlack, socket_client: SocketModeClient
) -> None:
    async def on_request(client: SocketModeClient, request: SocketModeRequest) -> None:
        await client.send_socket_mode_response(SocketModeResponse(request.envelope_id))

    socket_client.socket_mode_request_listeners.append(on_request)
    await socket_client.connect()
    await fake_slack.socket_connected(timeout=2)

    await fake_slack.socket_disconnect()
    await fake_slack.socket_connected(timeout=2, connections=2)
    ack = await fake_slack.socket_send("events_api", {"event": {"type": "app_mention"}}, timeout=2)

    assert [c.method for c in fake_slack.calls] == ["apps.connections.open"] * 2
    assert ack == {"envelope_id": fake_slack.socket_sent[-1]["envelope_id"]}
    assert fake_slack.socket_sent[-1]["retry_attempt"] == 0  # events carry retry info


async def test_socket_send_without_a_connected_client_fails_with_a_message(fake_slack: FakeSlack) -> None:
    with pytest.raises(AssertionError, match="no Socket Mode client connected within 0.1s"):
        await fake_slack.socket_send("events_api", {}, timeout=0.1)


async def test_bolt_socket_mode_handler_acks_a_slash_command_with_its_response(fake_slack: FakeSlack) -> None:
    web_client = AsyncWebClient(base_url=fake_slack.api_url, token=fake_slack.bot_token)
    app = AsyncApp(client=web_client)

    @app.command("/ops")
    async def ops(ack: Any, command: dict[str, Any]) -> None:
        await ack(f"ops {command['text']} for <@{command['user_id']}>")

    handler = AsyncSocketModeHandler(app, fake_slack.app_token, web_client=web_client)
    await handler.connect_async()
    try:
        payload = parse_qs(slack_requests.slash_command_body(text="status"))
        ack = await fake_slack.socket_send("slash_commands", {k: v[0] for k, v in payload.items()}, timeout=2)
    finally:
        await handler.close_async()

    assert ack["payload"]["text"] == "ops status for <@U0ALICE>"
    assert fake_slack.calls[-1].method == "auth.test"  # bolt authorized with the bot token first


# --- signed requests ------------------------------------------------------------------------------


@dataclass
class Captured:
    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
async def capture() -> AsyncIterator[Captured]:
    """A throwaway endpoint that records what slack_requests sends."""

    async def handle(request: web.Request) -> web.Response:
        captured.requests.append((dict(request.headers), await request.read()))
        return web.json_response({"received": True})

    app = web.Application()
    app.router.add_post("/slack/events", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    captured = Captured(f"http://127.0.0.1:{port}/slack/events")
    yield captured
    await runner.cleanup()


async def test_signed_slash_command_verifies_with_slack_sdk(capture: Captured, signing_secret: str) -> None:
    async with aiohttp.ClientSession() as session:
        result = await slack_requests.send_slash_command(
            session, capture.url, signing_secret, text="restart api"
        )

    [(headers, body)] = capture.requests
    assert result.status == 200 and result.json == {"received": True} and result.elapsed < 1
    assert SignatureVerifier(signing_secret).is_valid_request(body, headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
    fields = parse_qs(body.decode())
    assert (fields["command"], fields["text"], fields["user_id"]) == (["/ops"], ["restart api"], ["U0ALICE"])
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"


async def test_forged_stale_and_unsigned_requests_do_not_verify(
    capture: Captured, signing_secret: str
) -> None:
    body = slack_requests.slash_command_body()
    stale = int(time.time()) - 6 * 60  # Slack's replay window is 5 minutes
    async with aiohttp.ClientSession() as session:
        for options in ({"signature": "v0=" + "0" * 64}, {"timestamp": stale}, {"unsigned": True}):
            await slack_requests.post_signed(
                session, capture.url, body, slack_requests.FORM, signing_secret, **options
            )

    verifier = SignatureVerifier(signing_secret)
    assert [verifier.is_valid_request(b, h) for h, b in capture.requests] == [False, False, False]
    assert "X-Slack-Signature" not in capture.requests[2][0]
    # The stale one is correctly signed: only its age makes it invalid.
    stale_headers, stale_body = capture.requests[1]
    assert stale_headers["X-Slack-Signature"] == slack_requests.sign(signing_secret, stale, stale_body)


async def test_signed_event_retry_carries_retry_headers_and_same_event_id(
    capture: Captured, signing_secret: str
) -> None:
    event = {"type": "app_mention", "user": "U0ALICE", "text": "<@U0BOT> status", "channel": "C0OPS"}
    async with aiohttp.ClientSession() as session:
        await slack_requests.send_event(session, capture.url, signing_secret, event, event_id="Ev0001")
        await slack_requests.send_event(
            session, capture.url, signing_secret, event,
            event_id="Ev0001", retry_num=1, retry_reason="http_timeout",
        )

    (first_headers, first), (retry_headers, retry) = capture.requests
    assert all(SignatureVerifier(signing_secret).is_valid_request(b, h) for h, b in capture.requests)
    assert "X-Slack-Retry-Num" not in first_headers
    assert retry_headers["X-Slack-Retry-Num"] == "1"
    assert retry_headers["X-Slack-Retry-Reason"] == "http_timeout"
    envelope = json.loads(retry)
    assert (envelope["type"], envelope["event_id"], envelope["event"]["text"]) == (
        "event_callback", "Ev0001", "<@U0BOT> status"
    )
    assert json.loads(first)["event_id"] == "Ev0001"


async def test_signed_block_action_is_a_payload_form_field(capture: Captured, signing_secret: str) -> None:
    async with aiohttp.ClientSession() as session:
        await slack_requests.send_block_action(
            session, capture.url, signing_secret,
            [{"action_id": "restart", "value": "api"}],
            message={"type": "message", "ts": "1732500000.000100", "text": "restart?"},
            response_url="http://127.0.0.1:1/response/x",
        )

    [(headers, body)] = capture.requests
    assert SignatureVerifier(signing_secret).is_valid_request(body, headers)
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    assert payload["type"] == "block_actions"
    assert payload["actions"][0]["action_id"] == "restart" and payload["actions"][0]["type"] == "button"
    assert payload["container"]["message_ts"] == "1732500000.000100"
    assert payload["response_url"] == "http://127.0.0.1:1/response/x"


async def test_conversations_list_pages_through_the_known_channels_with_their_names(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    ids = {fake_slack.channel_id(f"#team-{i}") for i in range(5)}
    seen: dict[str, str] = {}
    cursor = None
    while True:
        page = await client.conversations_list(limit=2, cursor=cursor)
        assert len(page["channels"]) <= 2
        seen.update({c["id"]: c["name"] for c in page["channels"]})
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert set(seen) == ids
    assert seen[fake_slack.channel_id("#team-3")] == "team-3"


# --- permalinks and user groups ----------------------------------------------------------------------


async def test_get_permalink_names_the_channel_and_ts_and_a_reply_its_thread(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    root = await client.chat_postMessage(channel="#ops", text="approve?")
    reply = await client.chat_postMessage(channel=root["channel"], text="approved", thread_ts=root["ts"])
    channel, digits = root["channel"], root["ts"].replace(".", "")

    link = await client.chat_getPermalink(channel=channel, message_ts=root["ts"])
    reply_link = await client.chat_getPermalink(channel=channel, message_ts=reply["ts"])
    unknown = await api_error(client.chat_getPermalink(channel=channel, message_ts="1.000001"))
    by_name = await api_error(client.chat_getPermalink(channel="#ops", message_ts=root["ts"]))

    assert (link["channel"], link["permalink"]) == (channel, f"https://fake.slack.example/archives/{channel}/p{digits}")
    assert reply_link["permalink"] == (f"https://fake.slack.example/archives/{channel}/p{reply['ts'].replace('.', '')}"
                                       f"?thread_ts={root['ts']}&cid={channel}")
    assert unknown.response["error"] == "message_not_found" and by_name.response["error"] == "channel_not_found"


async def test_usergroups_users_list_answers_the_members_set_and_counts_calls(
    fake_slack: FakeSlack, client: AsyncWebClient
) -> None:
    fake_slack.set_usergroup("S0ONCALL01", ["U0ALICE001", "U0CAROL001"])
    fake_slack.set_usergroup("S0EMPTY001", [])

    oncall = await client.usergroups_users_list(usergroup="S0ONCALL01")
    empty = await client.usergroups_users_list(usergroup="S0EMPTY001")
    unknown = await api_error(client.usergroups_users_list(usergroup="S0NOSUCH01"))
    fake_slack.set_usergroup("S0ONCALL01", ["U0BOB00001"])
    changed = await client.usergroups_users_list(usergroup="S0ONCALL01")

    assert oncall["users"] == ["U0ALICE001", "U0CAROL001"] and empty["users"] == []
    assert unknown.response["error"] == "no_such_subteam" and changed["users"] == ["U0BOB00001"]
    assert [c.params["usergroup"] for c in fake_slack.calls_to("usergroups.users.list")] == [
        "S0ONCALL01", "S0EMPTY001", "S0NOSUCH01", "S0ONCALL01"]
    assert [c.ok for c in fake_slack.calls_to("usergroups.users.list")] == [True, True, False, True]


async def test_usergroups_need_the_bot_token_and_a_group_id(fake_slack: FakeSlack) -> None:
    fake_slack.set_usergroup("S0ONCALL01", ["U0ALICE001"])
    as_app = AsyncWebClient(base_url=fake_slack.api_url, token=fake_slack.app_token)
    as_bot = AsyncWebClient(base_url=fake_slack.api_url, token=fake_slack.bot_token)

    app_token = await api_error(as_app.usergroups_users_list(usergroup="S0ONCALL01"))
    no_group = await api_error(as_bot.api_call("usergroups.users.list", http_verb="GET", params={}))

    assert app_token.response["error"] == "not_allowed_token_type"
    assert no_group.response["error"] == "invalid_arguments"
    with pytest.raises(ValueError, match="starts with S"):
        fake_slack.set_usergroup("U0ALICE001", [])
    with pytest.raises(ValueError, match="serves no method"):
        fake_slack.calls_to("usergroups.list")
