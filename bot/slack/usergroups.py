"""Who is in a Slack user group (S…), for the policy's groups: `usergroups.users.list`, scope
`usergroups:read`.

Members are cached per group for `ttl` seconds of the injected clock; callers asking for the
same group at once share one call. When Slack fails, the last members known are used (with a
warning); with none known, the error is raised (one line), and the Authorizer refuses saying so.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from bot.commands.report import describe_exception
from bot.errors import TemporaryError
from bot.state.clock import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Known:
    members: frozenset[str]
    at: float  # when Slack said so (clock time)


class UserGroups:
    def __init__(self, client: AsyncWebClient, clock: Clock, ttl: float = 60.0) -> None:
        self._client = client
        self._clock = clock
        self._ttl = ttl
        self._known: dict[str, _Known] = {}
        self._asking: dict[str, asyncio.Task[frozenset[str]]] = {}

    async def members(self, group_id: str) -> frozenset[str]:
        """The user IDs in `group_id`. Raises TemporaryError when Slack can't say and nothing is known."""
        known = self._known.get(group_id)
        if known is not None and self._clock.now() - known.at < self._ttl:
            return known.members
        task = self._asking.get(group_id)
        if task is None:
            task = asyncio.ensure_future(self._ask(group_id))
            self._asking[group_id] = task
            task.add_done_callback(lambda done: self._asked(group_id, done))
        # shield: one caller giving up (cancelled) does not cancel the call the others wait for
        return await asyncio.shield(task)

    def _asked(self, group_id: str, task: asyncio.Task[frozenset[str]]) -> None:
        if self._asking.get(group_id) is task:
            del self._asking[group_id]
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning when every caller gave up

    async def _ask(self, group_id: str) -> frozenset[str]:
        asked_at = self._clock.now()
        try:
            answer = await self._client.usergroups_users_list(usergroup=group_id)
        except Exception as e:  # noqa: BLE001 - an API error, a timeout, a refused connection: all the same here
            return self._unanswered(group_id, e)
        members = frozenset(str(user) for user in answer.get("users") or ())
        self._known[group_id] = _Known(members, asked_at)
        return members

    def _unanswered(self, group_id: str, error: Exception) -> frozenset[str]:
        why = describe_exception(error)
        if "missing_scope" in why:
            why += " (the Slack app needs the usergroups:read scope: update it from manifests/ and reinstall)"
        known = self._known.get(group_id)
        if known is None:
            raise TemporaryError(why) from error
        log.warning("cannot list the members of Slack user group %s (%s); using those known %.0f s ago",
                    group_id, why, self._clock.now() - known.at)
        return known.members


__all__ = ["UserGroups"]
