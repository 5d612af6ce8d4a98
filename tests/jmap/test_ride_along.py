"""A read riding in another request: one round trip saved, never a read lost."""

from __future__ import annotations

import httpx
import pytest

from mailroom.core.secret import Secret
from mailroom.jmap.client import JmapClient
from mailroom.jmap.wire import MAILBOXES, Call, mailboxes_in
from tests.faults import FaultySandbox

pytestmark = pytest.mark.anyio


async def test_a_rider_goes_with_the_next_request_else_on_its_own(sandbox: FaultySandbox) -> None:
    async with httpx.AsyncClient(timeout=10.0) as http:
        jmap = JmapClient(http, sandbox.url + "/jmap/session", Secret(sandbox.token))
        await jmap.discover()
        before = sandbox.total_requests("api")
        rider = jmap.ride_along(MAILBOXES)
        await jmap.request([Call("Email/query", {"filter": {}}, "q")])  # takes it along
        mailboxes, state = mailboxes_in(await jmap.answer(rider), rider.call.call_id)
        assert sandbox.total_requests("api") - before == 1
        assert "Screener" in {m["name"] for m in mailboxes} and state
        alone = jmap.ride_along(MAILBOXES)  # no request takes it: it goes alone
        assert mailboxes_in(await jmap.answer(alone), alone.call.call_id)[0] == mailboxes
        assert sandbox.total_requests("api") - before == 2
