"""What list rules cost an idle pass, in requests: 0, 1 and 100 rules (the
rules' one query whatever their number, none without rules)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import httpx

from mailroom.ledger.model import DecisionKind, Intent
from mailroom.ledger.store import Ledger
from tests.faults import FaultySandbox


async def _idle_pass(rules: int) -> int:
    from mailroom.triage.workflow import Triage
    from tests.conftest import Sleeps, make_clients, ready

    with FaultySandbox() as sb, tempfile.TemporaryDirectory() as tmp:
        sb.mail.ensure_mailbox("Screener")
        for i in range(50):
            sb.mail.deliver(f"old{i}@bench.example")
        ledger, _ = Ledger.open(Path(tmp) / "l.db")
        intents = [
            Intent(f"list:l{i}.lists.example", DecisionKind.TRIAGE, "Feed", "cli")
            for i in range(rules)
        ]
        if intents:
            ledger.finish(ledger.begin(intents))
        async with httpx.AsyncClient() as http:
            jmap, _, book, plain = make_clients(sb, http, Sleeps())
            triage = Triage(jmap, book, plain.config, ledger=ledger)
            await ready(jmap, book, triage)
            await triage.run_pass()
            before = sb.total_requests("api")
            await triage.run_pass()
            requests = sb.total_requests("api") - before
        ledger.close()
        return requests


def bench_list_rules() -> dict[str, Any]:
    passes = [{"rules": n, "requests": asyncio.run(_idle_pass(n))} for n in (0, 1, 100)]
    return {"idle_passes": passes, "target": "the same one query for 1 or 100 rules, none for 0"}
