"""``mailroom undo SENDER [--apply]``: take back the sender's latest decision.

Dry by default: prints what it would do. With ``--apply`` it does it with the
pass's own means (one contacts write, one chunked ``Email/set`` of
conditional patches that never leave an email in no mailbox) and records the
undo in the ledger, intent first, like a pass.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TextIO

from mailroom.contacts.book import Change, ContactAction, ContactsError, Want
from mailroom.core.vocabulary import Trigger
from mailroom.jmap.errors import JmapError
from mailroom.ledger.model import DecisionKind, Effects, Intent
from mailroom.ledger.sqlite_file import LedgerError
from mailroom.ledger.store import Filter, Ledger
from mailroom.net import api_client
from mailroom.service import Clients, make_clients
from mailroom.settings import Settings
from mailroom.triage.planning import mailbox_ids_of, patch_for
from mailroom.undo.planning import UndoPlan, describe, plan_undo, undoable

EXIT_ERROR, EXIT_CONFIG = 1, 2
TRAIL = 10_000  # a sender's decisions read to find the one to take back


async def run_undo(
    settings: Settings, sender: str, *, apply: bool, out: TextIO, err: TextIO
) -> int:
    sender = sender.strip().lower()
    try:
        ledger = _existing(settings.ledger_path)
    except LedgerError as exc:
        print(f"mailroom undo: {exc}", file=err)
        return EXIT_ERROR
    if ledger is None:
        print(f"nothing to undo: no ledger at {settings.ledger_path}", file=out)
        return 0
    try:
        decision = undoable(ledger.history(Filter(sender, limit=TRAIL)))
        if decision is None:
            print(f"nothing to undo for {sender}", file=out)
            return 0
        async with api_client(settings.poll_interval) as http:
            clients = make_clients(settings, http)
            await clients.connect()
            await clients.triage.setup()
            boxes = clients.triage.mailboxes
            emails = [m.email for m in decision.effects.moves]
            found = await clients.jmap.get_emails(emails, ["id", "mailboxIds"])
            now = {e["id"]: mailbox_ids_of(e) for e in found if isinstance(e.get("id"), str)}
            labels = frozenset({*boxes.labels.values(), boxes.error_label} - {""})
            plan = plan_undo(decision, now, labels)
            names = {**ledger.mailbox_names(), **boxes.names}
            for line in describe(plan, sender, names):
                print(line, file=out)
            if not apply:
                print("dry run: nothing changed; run again with --apply to do it", file=out)
                return 0
            return await _apply(clients, ledger, plan, sender, out, err)
    except (JmapError, ContactsError, LedgerError) as exc:
        print(f"mailroom undo: {exc}", file=err)
        return EXIT_ERROR
    finally:
        ledger.close()


async def _apply(
    clients: Clients, ledger: Ledger, plan: UndoPlan, sender: str, out: TextIO, err: TextIO
) -> int:
    d = plan.decision
    (undo_id,) = ledger.begin(
        [
            Intent(
                subject=sender,
                kind=DecisionKind.UNDO,
                category=d.effects.previous,
                trigger=Trigger.CLI.value,
                undoes=d.id,
            )
        ]
    )
    effects = Effects(
        previous=d.intent.category,
        contact_uid=d.effects.contact_uid,
        joined=plan.join,
        left=plan.leave,
        moves=tuple(plan.restore.values()),
    )
    ledger.plan({undo_id: effects}, clients.triage.mailboxes.names)
    if plan.join or plan.leave:
        book = clients.book
        assert book is not None
        lookup = await book.lookup([Want(sender, "", "person")])
        if sender in lookup.failed:
            return _failed(ledger, undo_id, f"its contact: {lookup.failed[sender]}", err)
        known = lookup.known[sender]
        if known.uid is not None:  # never filled or rewritten by an undo
            known = dataclasses.replace(known, action=ContactAction.KEEP)
        # No contact any more (the user deleted it) and no group to go back to:
        # nothing to leave, and an undo never makes a contact just to leave a group.
        if known.uid is not None or plan.join:
            failed = await book.apply([Change(known, plan.join, plan.leave)])
            if sender in failed:
                return _failed(ledger, undo_id, f"its groups: {failed[sender]}", err)
    patches = {e: patch_for(m.before, m.after) for e, m in plan.restore.items()}
    outcome = await clients.jmap.update_emails(patches)
    refused = {k: v for k, v in outcome.failures.items() if v.get("type") != "notFound"}
    if refused:
        return _failed(ledger, undo_id, f"{len(refused)} emails refused: {refused}", err)
    ledger.finish([undo_id])
    print(f"done: {sender} is back in {plan.back_to}", file=out)
    return 0


def _existing(path: Path) -> Ledger | None:
    """The ledger if there is one: an undo never creates it."""
    return Ledger.open(path)[0] if path.exists() else None


def _failed(ledger: Ledger, decision: int, reason: str, err: TextIO) -> int:
    ledger.fail({decision: reason})
    print(f"mailroom undo: failed, {reason}; run it again", file=err)
    return EXIT_ERROR
