"""A pass's entries in the ledger, in the order that keeps them honest.

1. the intents, before anything is written to the account (even the error
   label): a ledger that cannot be written stops the pass untouched;
2. the plan (contact, groups, every email's mailboxes before and after), once
   the pass knows it and before it carries it out;
3. the outcome: done once a sender's labels are off, failed with the reason.

A pass killed between 1 and 3 leaves pending records. The next pass that
finds the same sender labelled for the same category takes the same record
up; one whose label is gone is checked against the account (``stale`` and
``settle``). A pass with nothing to decide writes nothing. Without a ledger
(a dry run) all of this does nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from mailroom.jmap.client import JmapClient
from mailroom.ledger.model import Decision, DecisionKind, Effects, EmailMove, Intent
from mailroom.ledger.store import Ledger
from mailroom.triage.categories import Categories
from mailroom.triage.planning import SenderWork, mailbox_ids_of, patched
from mailroom.triage.records import SenderRecord, Stage

COMPLETED = "completed after an interrupted pass (the labels were off, the mail where planned)"
SUPERSEDED = "superseded: the sender was labelled for another category before it finished"
UNSTARTED = "its label was removed before Mailroom changed anything"
PART_WAY = (
    "interrupted, and its label was removed before it finished: the account may be "
    "part-way; label one of the sender's emails again to finish it"
)


@dataclass
class Stale:
    """Pending decisions earlier passes left that this pass did not take up."""

    superseded: list[int] = field(default_factory=list)
    unstarted: list[int] = field(default_factory=list)
    to_check: list[Decision] = field(default_factory=list)  # planned: is the account so?

    @property
    def emails(self) -> list[str]:
        return sorted({m.email for d in self.to_check for m in d.effects.moves})


class Bookkeeper:
    def __init__(
        self,
        ledger: Ledger | None,
        trigger: str,
        categories: Categories,
        names: Mapping[str, str] | None = None,
    ) -> None:
        self._ledger = ledger
        self._names = names or {}  # mailbox id -> name, kept for display
        self._trigger = trigger
        self._categories = categories
        self._ids: dict[str, int] = {}  # sender -> its decision in this pass

    def intents(self, senders: Iterable[SenderWork]) -> None:
        """Raises LedgerError: the pass must stop before it writes anything."""
        works = list(senders)
        if self._ledger is None or not works:
            return
        intents = [
            Intent(
                subject=w.sender,
                kind=DecisionKind.TRIAGE,
                category=w.category.name,
                trigger=self._trigger,
                label_email=min(w.emails) if w.emails else None,
                rule=w.rule,
            )
            for w in works
        ]
        ids = self._ledger.begin(intents)
        self._ids = {w.sender: i for w, i in zip(works, ids, strict=True)}

    def planned(self, records: Iterable[SenderRecord]) -> None:
        if self._ledger is None:
            return
        plans = {
            self._ids[r.sender]: self.effects(r)
            for r in records
            if r.alive and r.sender in self._ids
        }
        if plans:
            self._ledger.plan(plans, self._names)

    def outcomes(self, records: Iterable[SenderRecord]) -> None:
        if self._ledger is None or not self._ids:
            return
        done: list[int] = []
        failed: dict[int, str] = {}
        for record in records:
            decision = self._ids.get(record.sender)
            if decision is None:
                continue
            if record.stage is Stage.UNLABELLED:
                done.append(decision)
            elif not record.alive:
                failed[decision] = record.reason or record.stage.value
        self._ledger.finish(done)
        self._ledger.fail(failed)

    def effects(self, record: SenderRecord) -> Effects:
        """What the sender's triage does to the account, as planned."""
        moves = []
        for eid, before in sorted(record.mail.items()):
            after = patched(
                patched(before, record.refiled.get(eid, {})), record.unlabelled.get(eid, {})
            )
            if after != before:
                moves.append(EmailMove(eid, before, after))
        change = record.change
        if change is None:
            return Effects(moves=tuple(moves))
        left = sorted(change.leave)
        # A Person left both Person and Imbox: the category left is the deepest one.
        was = [c for c in self._categories if c.contact_group in left]
        previous = max(was, key=lambda c: len(self._categories.chain(c)), default=None)
        return Effects(
            previous=previous.name if previous is not None else None,
            contact_uid=change.uid,
            contact_created=change.known.uid is None,
            contact_name=change.known.want.name if change.known.uid is None else None,
            contact_kind=change.known.want.kind if change.known.uid is None else None,
            joined=tuple(sorted(change.join)),
            left=tuple(left),
            moves=tuple(moves),
        )

    # -- what earlier passes left -------------------------------------------------

    def stale(self, labelled: Collection[str]) -> Stale:
        """Pending decisions not taken up by this pass; ``labelled``: every sender
        whose label this pass saw (decided now, or flagged and waiting)."""
        out = Stale()
        if self._ledger is None:
            return out
        ours = set(self._ids.values())
        for decision in self._ledger.pending():
            if decision.id in ours or decision.intent.kind is not DecisionKind.TRIAGE:
                continue
            subject = decision.intent.subject
            if subject in self._ids:
                out.superseded.append(decision.id)
            elif subject in labelled:
                continue  # flagged meanwhile: the label decides once the user resolves it
            elif not decision.effects.moves:
                out.unstarted.append(decision.id)
            else:
                out.to_check.append(decision)
        return out

    def settle(self, stale: Stale, mailboxes: Mapping[str, frozenset[str]]) -> None:
        """Close what ``stale`` found; ``mailboxes``: where its planned emails are now
        (an email missing was deleted since, which says nothing against the plan)."""
        if self._ledger is None:
            return
        done, failed = [], {}
        for decision in stale.to_check:
            as_planned = all(
                mailboxes.get(m.email, m.after) == m.after for m in decision.effects.moves
            )
            if as_planned:
                done.append(decision.id)
            else:
                failed[decision.id] = PART_WAY
        failed.update({i: SUPERSEDED for i in stale.superseded})
        failed.update({i: UNSTARTED for i in stale.unstarted})
        if done:
            self._ledger.finish(done, note=COMPLETED)
        if failed:
            self._ledger.fail(failed)


async def settle_stale(jmap: JmapClient, bookkeeper: Bookkeeper, labelled: set[str]) -> None:
    """Close the decisions an interrupted pass left pending: one Email/get of their
    planned emails, and only when there are any (after a crash)."""
    stale = bookkeeper.stale(labelled)
    found: dict[str, frozenset[str]] = {}
    if stale.emails:
        for email in await jmap.get_emails(stale.emails, ["id", "mailboxIds"]):
            if isinstance(email.get("id"), str):
                found[email["id"]] = mailbox_ids_of(email)
    bookkeeper.settle(stale, found)
