"""The ledger's cost: what a pass of 100 senders x 10 emails adds, and the
file's size after many decisions (``make bench``, section ``ledger``)."""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from mailroom.ledger.model import DecisionKind, Effects, EmailMove, Intent
from mailroom.ledger.store import Ledger

SENDERS, EMAILS = 100, 10  # one pass


def _pass(n: int) -> tuple[list[Intent], list[Effects]]:
    """A pass's records with ids shaped like Fastmail's (26-character email ids,
    mailbox ids as long as Cyrus's UUIDs)."""
    screener, label = str(uuid.UUID(int=1)), str(uuid.UUID(int=2))
    destinations = [str(uuid.UUID(int=10 + k)) for k in range(5)]
    intents, effects = [], []
    for s in range(SENDERS):
        sender = f"sender{n}-{s}@domain{s % 40}.example"
        emails = ["M" + uuid.uuid4().hex[:25] for _ in range(EMAILS)]
        intents.append(Intent(sender, DecisionKind.TRIAGE, "Feed", "push", label_email=emails[0]))
        dest = destinations[s % 5]
        moves = [EmailMove(emails[0], frozenset({screener, label}), frozenset({dest}))]
        moves += [EmailMove(e, frozenset({screener}), frozenset({dest})) for e in emails[1:]]
        effects.append(
            Effects(
                contact_uid=str(uuid.uuid4()),
                contact_created=True,
                joined=("Feed",),
                moves=tuple(moves),
            )
        )
    return intents, effects


def bench_ledger(decisions: int) -> dict[str, Any]:
    passes = max(1, decisions // SENDERS)
    costs = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mailroom.db"
        ledger, _ = Ledger.open(path)
        for n in range(passes):
            intents, effects = _pass(n)
            started = time.perf_counter()
            ids = ledger.begin(intents)  # what a pass adds: its three writes
            ledger.planned_uids(i.subject for i in intents)  # and its read of planned uids
            ledger.plan(dict(zip(ids, effects, strict=True)))
            ledger.finish(ids)
            ledger.pending()  # and the look for what an interrupted pass left
            costs.append(time.perf_counter() - started)
        ledger._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = path.stat().st_size
        started = time.perf_counter()
        history = ledger.history()
        history_s = time.perf_counter() - started
        ledger.close()
    costs.sort()
    return {
        "pass": f"{SENDERS} senders x {EMAILS} emails",
        "pass_ms": {
            "median": round(statistics.median(costs) * 1000, 2),
            "p95": round(costs[int(0.95 * (len(costs) - 1))] * 1000, 2),
            "max": round(costs[-1] * 1000, 2),
            "n": len(costs),
        },
        "target_pass_ms": 5.0,
        "decisions": passes * SENDERS,
        "emails_per_decision": EMAILS,
        "file_mb": round(size / 1e6, 2),
        "target_file_mb_per_10000": 20.0,
        "history_of_1000_ms": round(history_s * 1000, 1) if len(history) else None,
    }
