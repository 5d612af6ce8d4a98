"""Taking decisions back, many senders at once: ``undo``, ``reset`` and ``@ToScreener``.

The pass's own means and guarantees, batched the same way: one ``Email/get``
of every email the decisions moved, one contacts lookup, one contacts write
(groups left and joined again, the contacts Mailroom made deleted if nobody
changed them) and one chunked ``Email/set`` of conditional patches that never
leave an email in no mailbox, whatever the number of senders. Each undo is
recorded like a pass: the intent and plan before the account is written,
the outcome after; run again after an interruption, it finishes the job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mailroom.account.mailboxes import MailboxMap
from mailroom.contacts import uids
from mailroom.contacts.book import (
    Change,
    ContactAction,
    ContactBook,
    ContactKept,
    ContactKind,
    Lookup,
    Want,
)
from mailroom.core.vocabulary import Trigger
from mailroom.jmap.client import JmapClient
from mailroom.ledger.model import Decision, Effects, undoing
from mailroom.ledger.store import Ledger
from mailroom.takeback.plan import UndoPlan, plan_undo, with_contact
from mailroom.triage.refile import patch_for
from mailroom.triage.scan import mailbox_ids_of


@dataclass
class Undone:
    """What became of one sender's undo."""

    plan: UndoPlan
    error: str | None = None  # None: done
    contact: str | None = None  # what became of the contact Mailroom made, if said
    wrote: bool = False  # its writes began: failing after, it stopped part-way


class TakeBack:
    """``plan`` reads the account (mail, then contacts) and ``apply`` writes it."""

    def __init__(
        self,
        jmap: JmapClient,
        book: ContactBook,
        boxes: MailboxMap,
        labels: frozenset[str] = frozenset(),  # label mailbox ids: never put back or off
    ) -> None:
        self.jmap = jmap
        self.book = book
        self.boxes = boxes
        self.labels = labels
        self._lookup = Lookup()  # the contacts of the last plan, for its apply

    async def plan(
        self, decisions: Sequence[Decision], ledger: Ledger | None = None
    ) -> list[UndoPlan]:
        """The undo of each decision, from the account as it is now; reads only.
        ``ledger``: where later decisions that filled a contact one of these made
        are found (Mailroom's own writes on it, never "changed since")."""
        self._lookup = Lookup()
        if not decisions:
            return []
        emails = sorted({m.email for d in decisions for m in d.effects.moves})
        now: dict[str, frozenset[str]] = {}
        if emails:
            for email in await self.jmap.get_emails(emails, ["id", "mailboxIds"]):
                if isinstance(email.get("id"), str):
                    now[email["id"]] = mailbox_ids_of(email)
        plans = [plan_undo(d, now, self.labels) for d in decisions]
        wanted = [p for p in plans if p.touches_contact or p.decision.effects.contact_created]
        if wanted:
            # One lookup serves the plan (may the contact go?) and the write after it.
            self._lookup = await self.book.lookup([_made(p.decision, ledger) for p in wanted])
        known = self._lookup.known
        return [
            with_contact(p, known.get(p.sender)) if p.decision.effects.contact_created else p
            for p in plans
        ]

    async def apply(
        self, plans: Sequence[UndoPlan], ledger: Ledger, trigger: Trigger, rule: int | None = None
    ) -> list[Undone]:
        """Carry the plans out and record them; each sender's outcome. ``rule``: the
        domain decision being taken back with these senders."""
        results = {p.sender: Undone(p) for p in plans}
        if not plans:
            return []
        ids = ledger.begin([undoing(p.decision, trigger.value, rule) for p in plans])
        decision_of = {p.sender: i for p, i in zip(plans, ids, strict=True)}
        ledger.plan({decision_of[p.sender]: _effects(p) for p in plans}, self.boxes.names)
        await self._contacts([p for p in plans if p.touches_contact], results)
        patches = {
            email: patch_for(move.before, move.after)
            for p in plans
            if results[p.sender].error is None
            for email, move in p.restore.items()
        }
        if patches:
            for p in plans:
                if p.restore and results[p.sender].error is None:
                    results[p.sender].wrote = True
            outcome = await self.jmap.move_emails(patches)
            owner = {e: p.sender for p in plans for e in p.restore}
            for email, failure in outcome.failures.items():
                if failure.get("type") != "notFound" and email in owner:
                    results[owner[email]].error = f"email {email} not restored: {_why(failure)}"
        ended = [(decision_of[s], r) for s, r in results.items() if r.error is not None]
        ledger.fail({d: str(r.error) for d, r in ended if not r.wrote})
        ledger.stop({d: str(r.error) for d, r in ended if r.wrote})
        for sender, r in results.items():
            if r.error is None:
                ledger.finish([decision_of[sender]], note=r.contact)
        return list(results.values())

    async def _contacts(self, plans: Sequence[UndoPlan], results: Mapping[str, Undone]) -> None:
        """Groups left and joined again, made contacts deleted: one write."""
        if not plans:
            return
        lookup = self._lookup
        changes = []
        for p in plans:
            if p.sender in lookup.failed:
                results[p.sender].error = f"its contact: {lookup.failed[p.sender]}"
                continue
            known = lookup.known.get(p.sender)
            if known is None:
                results[p.sender].error = "its contact was not looked up"
                continue
            # No contact any more (the user deleted it) and no group to go back
            # to: nothing to leave, and an undo never makes a contact for that.
            if known.uid is None and not p.join:
                continue
            if known.uid is not None:  # never filled or rewritten by an undo
                known = dataclasses.replace(known, action=ContactAction.KEEP)
            destroy = p.delete_contact and known.pristine and not (known.groups - set(p.leave))
            changes.append(Change(known, p.join, p.leave, destroy=destroy))
            results[p.sender].wrote = True
            if p.delete_contact:
                results[p.sender].contact = (
                    "contact deleted" if destroy else "contact kept: it changed since"
                )
        failed = await self.book.apply(changes) if changes else {}
        for sender, error in failed.items():
            if isinstance(error, ContactKept):
                results[sender].contact = f"contact kept: {error}"
            else:
                results[sender].error = f"its contact: {error}"
        for p in plans:
            if p.contact_kept and results[p.sender].contact is None:
                results[p.sender].contact = f"contact kept: {p.contact_kept}"


def _made(decision: Decision, ledger: Ledger | None) -> Want:
    """The sender as the decision wrote its contact, and as later decisions
    filled it (what a card nobody else changed holds)."""
    e = decision.effects
    fills: list[tuple[str, ContactKind]] = []
    if e.contact_created and ledger is not None:
        for later in ledger.fills_after(decision):
            uid = later.effects.contact_uid
            if uid is None or e.contact_uid is None or uids.same(uid, e.contact_uid):
                fills.append((later.effects.contact_name or "", _kind(later.effects)))
    return Want(decision.intent.subject, e.contact_name or "", _kind(e), tuple(fills))


def _why(failure: Mapping[str, object]) -> str:
    kind, description = failure.get("type"), failure.get("description")
    return f"{kind} ({description})" if description else str(kind)


def _kind(effects: Effects) -> ContactKind:
    return "company" if effects.contact_kind == "company" else "person"


def _effects(plan: UndoPlan) -> Effects:
    d = plan.decision
    return Effects(
        previous=d.intent.category,
        contact_uid=d.effects.contact_uid,
        joined=plan.join,
        left=plan.leave,
        moves=tuple(plan.restore.values()),
    )
