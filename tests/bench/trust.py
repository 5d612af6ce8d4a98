"""What trusting the people you write to costs a pass (MAILROOM_TRUST_SENT), in
requests, against the same pass with it off: on an idle pass, and with 1, 10
and 100 new senders waiting, none of them written to (the check alone: a
sender who is trusted then costs what any decision costs)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx

from tests.faults import FaultySandbox


async def _requests(trust: str | None, new: int) -> tuple[int, int, int]:
    """(requests of an idle pass, of the pass meeting ``new`` senders, senders trusted)."""
    from mailroom.triage.workflow import Triage
    from tests.conftest import Sleeps, make_clients, ready

    with FaultySandbox() as sb:
        sb.mail.ensure_mailbox("Screener")
        for i in range(50):
            sb.mail.deliver(f"old{i}@bench.example")
        async with httpx.AsyncClient() as http:
            jmap, _, book, plain = make_clients(sb, http, Sleeps())
            triage = Triage(jmap, book, replace(plain.config, trust_sent=trust))
            await ready(jmap, book, triage)
            await triage.run_pass()  # the first look
            before = sb.total_requests("api")
            await triage.run_pass()
            idle = sb.total_requests("api") - before
            sb.mail.deliver(sb.username, mailboxes=["Sent"], to=["someone@else.example"])
            for i in range(new):
                sb.mail.deliver(f"new{i}@bench.example")
            before = sb.total_requests("api")
            result = await triage.run_pass()
            return idle, sb.total_requests("api") - before, len(result.senders)


def bench_trust() -> dict[str, Any]:
    rows = []
    for new in (1, 10, 100):
        idle_off, pass_off, _ = asyncio.run(_requests(None, new))
        idle_on, pass_on, trusted = asyncio.run(_requests("Imbox", new))
        rows.append(
            {
                "new_senders": new,
                "trusted": trusted,
                "extra_requests_idle": idle_on - idle_off,
                "extra_requests_with_new_senders": pass_on - pass_off,
            }
        )
    return {"passes": rows, "targets": {"idle": 0, "with_new_senders": 1}}
