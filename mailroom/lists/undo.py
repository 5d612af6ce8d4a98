"""A list decision taken back (``mailroom undo list:<id>``, ``reset``): every
email it filed goes back where it was (without the labels that asked for it),
unless the user has moved it since; the undo recorded first, like any other."""

from __future__ import annotations

from mailroom.account.mailboxes import MailboxMap
from mailroom.jmap.client import JmapClient
from mailroom.ledger.model import Decision, Effects, EmailMove, undoing
from mailroom.ledger.store import Ledger
from mailroom.triage.refile import patch_for, patched
from mailroom.triage.scan import mailbox_ids_of


async def undo_list(
    jmap: JmapClient, boxes: MailboxMap, ledger: Ledger, decision: Decision, trigger: str
) -> tuple[int, int]:
    """(emails put back, emails left where the user moved them)."""
    (undo_id,) = ledger.begin([undoing(decision, trigger)])
    moves = decision.effects.moves
    got = await jmap.get_emails([m.email for m in moves], ["id", "mailboxIds"])
    now = {e["id"]: mailbox_ids_of(e) for e in got if isinstance(e.get("id"), str)}
    labels = {*boxes.labels.values(), *boxes.extra_labels, boxes.error_label} - {""}
    restore = {}
    left = 0
    for move in moves:
        current = now.get(move.email)
        if current is None:
            continue  # deleted since: nothing to put back
        if current != move.after - labels:
            left += 1  # moved by the user since: theirs now
            continue
        target = (move.before - labels) or frozenset({boxes.screener})
        if target != current:
            restore[move.email] = patch_for(current, target)
    recorded = tuple(EmailMove(e, now[e], patched(now[e], p)) for e, p in restore.items())
    ledger.plan({undo_id: Effects(previous=decision.intent.category, moves=recorded)})
    outcome = await jmap.move_emails(restore)
    if outcome.failures:
        ledger.fail({undo_id: f"{len(outcome.failures)} emails could not be put back"})
        return len(outcome.updated), left
    ledger.finish([undo_id])
    return len(restore), left


async def undo_rule_of_list(
    jmap: JmapClient, boxes: MailboxMap, ledger: Ledger, rule: Decision, trigger: str
) -> tuple[int, int]:
    """A list's decision taken back with everything passes filed by it since,
    newest first: (emails put back, emails left where the user moved them)."""
    back = left = 0
    for decision in [*ledger.filed_by(rule.id), rule]:
        b, l_ = await undo_list(jmap, boxes, ledger, decision, trigger)
        back, left = back + b, left + l_
    return back, left
