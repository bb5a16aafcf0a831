"""PagerDuty fixtures.

pagerduty   a started tests.fakes.pagerduty.FakePagerDuty (Events API v2) on a free 127.0.0.1
            port, one per test, stopped afterwards. Point the client at it with
            PagerDuty(http, pagerduty.routing_key, url=pagerduty.url).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.pagerduty import FakePagerDuty


@pytest.fixture
async def pagerduty() -> AsyncIterator[FakePagerDuty]:
    async with FakePagerDuty() as fake:
        yield fake
