"""Filing a mailing list's waiting mail (``@WholeList``): every email of the
list in the Screener goes where the category puts it, recorded first.

A list decision changes no contact: it is about the list, not its senders.
The intent is written before anything moves, the moves (each email's
mailboxes before and after) before they are made, and the labels come off
last, so a pass that fails part-way is tried again and an undo knows every
email it filed (``lists.undo``). Later posts are filed by the list's rule, one
query for all lists together.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mailroom.account.categories import Categories, Category
from mailroom.account.mailboxes import MailboxMap
from mailroom.core.words import count
from mailroom.jmap.client import JmapClient
from mailroom.jmap.wire import any_of_chunks
from mailroom.ledger.model import DecisionKind, Effects, EmailMove, Intent
from mailroom.ledger.store import Ledger
from mailroom.lists.listid import LIST_ID, list_id, subject_of
from mailroom.triage.refile import patch_for, patched, target_mailboxes
from mailroom.triage.scan import ListWork, mailbox_ids_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Filed:
    """What one list filing did: ``moved`` emails; ``failed``: why it did not
    finish (None: done, or nothing to do)."""

    moved: int = 0
    failed: str | None = None


def waiting_filter(screener: str, ident: str) -> Mapping[str, Any]:
    """The Screener's mail whose List-Id mentions the list (confirmed exactly after)."""
    return {
        "operator": "AND",
        "conditions": [{"inMailbox": screener}, {"header": ["List-Id", ident]}],
    }


async def file_list(
    jmap: JmapClient,
    boxes: MailboxMap,
    categories: Categories,
    ledger: Ledger | None,
    work: ListWork,
    trigger: str,
    *,
    by_label: bool = True,
) -> Filed:
    """Decide ``work``'s list (labelled now, or by ``mailroom triage list:<id>``
    or the Screener page)."""
    if by_label and not work.emails:
        return Filed()  # its labels disagreed: flagged instead
    found = await jmap.query_emails(
        waiting_filter(boxes.screener, work.list_id), ["id", "mailboxIds", LIST_ID]
    )
    current = _of_list(found, {work.list_id}).get(work.list_id, {})
    current.update(work.emails)
    intent = Intent(
        subject=subject_of(work.list_id),
        kind=DecisionKind.TRIAGE,
        category=work.category.name,
        trigger=trigger,
        label_email=min(work.emails) if work.emails else None,
    )
    return await _file(jmap, boxes, categories, ledger, intent, work.category, current, work.emails)


async def waiting_of(jmap: JmapClient, boxes: MailboxMap, ident: str) -> int:
    """How many emails of the list wait in the Screener (for a dry run)."""
    found = await jmap.query_emails(waiting_filter(boxes.screener, ident), ["id", LIST_ID])
    return len(_of_list(found, {ident}).get(ident, {}))


async def file_by_rules(
    jmap: JmapClient,
    boxes: MailboxMap,
    categories: Categories,
    ledger: Ledger,
    trigger: str,
) -> int:
    """New mail of the lists decided before, filed by their rules: one query
    for all of them together (none without rules)."""
    rules = ledger.list_rules()
    if not rules:
        return 0
    conditions = [{"header": ["List-Id", ident]} for ident in sorted(rules)]
    found: list[dict[str, Any]] = []
    for chunk in any_of_chunks(conditions):
        filter_ = {"operator": "AND", "conditions": [{"inMailbox": boxes.screener}, chunk]}
        found += await jmap.query_emails(filter_, ["id", "mailboxIds", LIST_ID])
    filed = 0
    for ident, current in _of_list(found, set(rules)).items():
        rule = rules[ident]
        category = categories.by_name(rule.intent.category or "")
        intent = Intent(
            subject=subject_of(ident),
            kind=DecisionKind.TRIAGE,
            category=category.name,
            trigger=trigger,
            rule=rule.id,
        )
        filed += (await _file(jmap, boxes, categories, ledger, intent, category, current, {})).moved
    return filed


def _of_list(found: list[dict[str, Any]], wanted: set[str]) -> dict[str, dict[str, frozenset[str]]]:
    """list id -> {email id -> mailbox ids}, for the emails whose List-Id is
    exactly one of ``wanted`` (the server's header filter matches text)."""
    out: dict[str, dict[str, frozenset[str]]] = {}
    for email in found:
        ident = list_id(email.get(LIST_ID))
        if ident in wanted and isinstance(email.get("id"), str):
            out.setdefault(ident, {})[email["id"]] = mailbox_ids_of(email)
    return out


async def _file(
    jmap: JmapClient,
    boxes: MailboxMap,
    categories: Categories,
    ledger: Ledger | None,
    intent: Intent,
    category: Category,
    current: dict[str, frozenset[str]],
    labelled: Mapping[str, frozenset[str]],
) -> Filed:
    """Record, move, take the labels off, finish."""
    ids = ledger.begin([intent]) if ledger is not None else []
    moves = {}
    for eid, now in current.items():
        after = target_mailboxes(now, category, categories, boxes)
        if after != now:
            moves[eid] = patch_for(now, after)
    if ledger is not None:
        recorded = tuple(EmailMove(e, current[e], patched(current[e], p)) for e, p in moves.items())
        ledger.plan({ids[0]: Effects(moves=recorded)})
    outcome = await jmap.move_emails(moves)
    if outcome.failures:
        why = f"{count(len(outcome.failures), 'email')} could not be filed"
        _failed(ledger, ids, why, landed=bool(outcome.updated))
        return Filed(len(outcome.updated), why)
    labels = {boxes.labels[category.name], boxes.list_label}
    unlabel = {}
    for eid in labelled:
        now = patched(current[eid], moves.get(eid, {}))
        keep = now - labels or frozenset({boxes.destinations[category.destination]})
        unlabel[eid] = patch_for(now, keep)
    if unlabel:
        off = await jmap.update_emails(unlabel)
        if off.failures:
            # Filed, but a label stayed: the next pass sees it and finishes this record.
            why = f"the labels of {count(len(off.failures), 'email')} could not be removed"
            _failed(ledger, ids, why, landed=True)
            return Filed(len(moves), why)
    if ledger is not None:
        ledger.finish(ids)
    log.info(
        "mailing list filed",
        extra={
            "fields": {"subject": intent.subject, "category": category.name, "emails": len(moves)}
        },
    )
    return Filed(len(moves))


def _failed(ledger: Ledger | None, ids: list[int], why: str, *, landed: bool) -> None:
    """A list decision that did not finish: failed when nothing of it landed;
    stopped part-way otherwise, so undo and reset take back what did, and the
    next attempt (a label seen again, the same command) takes the record up."""
    if ledger is None:
        return
    if landed:
        ledger.stop({ids[0]: f"{why}; what landed stands: label it again or undo it"})
    else:
        ledger.fail({ids[0]: why})
