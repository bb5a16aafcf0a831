"""Posting at Slack's pace: per channel, without one channel holding up another."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.poster import Poster

pytestmark = pytest.mark.integration


async def test_posts_to_one_channel_are_spaced_by_the_interval_and_channels_do_not_wait_for_each_other(fake_slack):
    poster = Poster(AsyncWebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url), interval=0.2)
    await asyncio.gather(*(poster.post("#alerts", f"alert {i}") for i in range(4)), poster.post("#ops", "answer"))
    times = {c.params["text"]: c.time for c in fake_slack.calls if c.method == "chat.postMessage"}
    alerts = sorted(times[f"alert {i}"] for i in range(4))
    gaps = [b - a for a, b in pairwise(alerts)]
    assert all(gap >= 0.18 for gap in gaps), gaps
    # #ops went out while #alerts was still waiting its turn.
    assert times["answer"] < alerts[1]


class _AnswersWithIds:
    """chat.postMessage answering like Slack: a #name comes back as the channel's ID."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, float]] = []

    async def chat_postMessage(self, channel: str, **kwargs):  # noqa: N802 - slack_sdk's name
        import time
        from types import SimpleNamespace

        self.sent.append((channel, time.monotonic()))
        return SimpleNamespace(data={"ok": True, "channel": "C0ALERTS", "ts": str(len(self.sent))})


async def test_a_channel_named_and_addressed_by_id_is_paced_as_one_channel():
    client = _AnswersWithIds()
    poster = Poster(client, interval=0.2)  # type: ignore[arg-type]
    await poster.post("#alerts", "alert")  # Slack answers with C0ALERTS
    await poster.post("C0ALERTS", "reply in its thread", thread_ts="1")
    (_, first), (_, second) = client.sent
    assert second - first >= 0.18


async def test_posts_to_a_name_waiting_when_its_id_is_learned_are_paced_with_posts_to_the_id(fake_slack, tmp_path):
    # A storm: three groups posted to #alerts at once; the first answer names the channel's ID and a
    # reply in that thread goes to the ID while the other two groups still wait under the name. Before,
    # the name and the ID were paced apart from then on, and Slack answered 429.
    from bot.state.store import open_store

    store = open_store(f"sqlite:///{tmp_path}/state.db")
    # The bot keeps 0.3 s between posts; the fake refuses under 0.1 s (the old bug sent two at once),
    # leaving room for a loaded machine's jitter.
    fake_slack.pace_per_channel(min_interval=0.1, retry_after=1)
    poster = Poster(AsyncWebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url), interval=0.3,
                    store=store)
    roots = [asyncio.create_task(poster.post("#alerts", f"group {i}")) for i in range(3)]
    first = await asyncio.wait_for(asyncio.shield(roots[0]), 5)
    reply = asyncio.create_task(poster.post(first["channel"], "investigation", thread_ts=first["ts"]))
    await asyncio.gather(*roots, reply)
    await store.close()
    assert fake_slack.ratelimited_count == 0
    times = sorted(c.time for c in fake_slack.calls if c.method == "chat.postMessage")
    gaps = [b - a for a, b in pairwise(times)]
    assert len(times) == 4 and all(gap >= 0.1 for gap in gaps), gaps


async def test_a_large_text_file_is_made_safe_off_the_event_loop_a_small_one_on_it(fake_slack, monkeypatch):
    # A 5 MB log took ~0.5 s to redact on the loop (twice: the answer and the poster each did it).
    import threading

    import bot.slack.poster as poster_module
    from diagnostics.result import FileAttachment

    threads: list[int] = []
    real = poster_module.safe_file

    def recording(file: FileAttachment) -> FileAttachment:
        threads.append(threading.get_ident())
        return real(file)

    monkeypatch.setattr(poster_module, "safe_file", recording)
    poster = Poster(AsyncWebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url), interval=0)
    line = "2025-03-14T11:58:00.000Z GET /cart 200 Authorization: Bearer abcdef0123456789secret\n"
    large = FileAttachment(filename="logs.txt", content=(line * 2000).encode(), title="Logs", mimetype="text/plain")
    small = FileAttachment(filename="one.txt", content=line.encode(), title="Line", mimetype="text/plain")

    await poster.upload("C0OPS", large)
    await poster.upload("C0OPS", small)

    assert len(threads) == 2 and threads[0] != threading.get_ident() and threads[1] == threading.get_ident()
    uploaded = {f.filename: f.content.decode() for f in fake_slack.files}
    assert set(uploaded) == {"logs.txt", "one.txt"}
    assert "abcdef0123456789secret" not in uploaded["logs.txt"] + uploaded["one.txt"]
