"""A pass's entries in the ledger, in the order that keeps them honest.

1. the intents, before anything is written to the account (even the error
   label): a ledger that cannot be written stops the pass untouched;
2. the plan (contact, groups, every email's mailboxes before and after), once
   the pass knows it and before it carries it out;
3. the outcome: done once a sender's labels are off; failed with the reason
   when nothing was written yet; stopped part-way (``partial``) when it
   failed after its writes began: what landed of it stands, so ``undo`` and
   ``reset`` take it back, and the next attempt at it takes the record up.

A pass killed between 1 and 3 leaves pending records. The next pass that
finds the same sender labelled for the same category takes the same record
up (and makes a contact it had planned under the uid it planned); one whose
label is gone is checked against the account (``stale`` and ``settle``).
A pass with nothing to decide writes nothing. Without a ledger (a dry run)
all of this does nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from mailroom.account.categories import Categories
from mailroom.contacts.book import ContactAction
from mailroom.jmap.client import JmapClient
from mailroom.ledger.model import Decision, DecisionKind, Effects, EmailMove, Intent
from mailroom.ledger.store import Ledger
from mailroom.triage.records import SenderRecord, Stage
from mailroom.triage.refile import patched
from mailroom.triage.scan import SenderWork, mailbox_ids_of

COMPLETED = "completed after an interrupted pass (the labels were off, the mail where planned)"
SUPERSEDED = (
    "superseded: the sender was labelled for another category before it finished "
    "(what landed of it stands until taken back)"
)
UNSTARTED = "its label was removed before Mailroom changed anything"
PART_WAY = (
    "interrupted, and its label was removed before it finished: what landed of it "
    "stands; label one of the sender's emails again to finish it, or undo it"
)
UNCHECKED = (
    "interrupted after its writes began (it moved no email to check): what landed "
    "of it stands until taken back"
)


@dataclass
class Stale:
    """Pending decisions earlier passes left that this pass did not take up."""

    superseded: list[int] = field(default_factory=list)  # planned: may have landed
    unstarted: list[int] = field(default_factory=list)  # never planned: nothing written
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
                trigger=w.trigger or self._trigger,
                label_email=min(w.emails) if w.emails else None,
                rule=w.rule,
            )
            for w in works
        ]
        ids = self._ledger.begin(intents)
        self._ids = {w.sender: i for w, i in zip(works, ids, strict=True)}

    def planned_uids(self, senders: Iterable[str]) -> dict[str, str]:
        """The contact uid each sender's open decision planned (see ``Pass``)."""
        return {} if self._ledger is None else self._ledger.planned_uids(senders)

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
        stopped: dict[int, str] = {}
        for record in records:
            decision = self._ids.get(record.sender)
            if decision is None:
                continue
            if record.stage is Stage.UNLABELLED:
                done.append(decision)
            elif not record.alive:
                # Its writes began: whatever landed stands, and is taken back exactly.
                into = stopped if record.wrote else failed
                into[decision] = record.reason or record.stage.value
        self._ledger.finish(done)
        self._ledger.fail(failed)
        self._ledger.stop(stopped)

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
        want = change.known.want
        made = change.known.uid is None
        fills = change.known.action is ContactAction.FILL
        return Effects(
            previous=previous.name if previous is not None else None,
            contact_uid=change.uid,
            contact_created=made,
            # What Mailroom writes on the card, made or filled: an undo knows
            # these as its own, never as the user's change.
            contact_name=want.name if made or fills else None,
            contact_kind=want.kind if made or fills else None,
            filled=(f"empty fields for a {want.kind}",) if fills else (),
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
                # Labelled for another category: this pass decided again.
                (out.superseded if decision.planned else out.unstarted).append(decision.id)
            elif subject in labelled:
                continue  # flagged meanwhile: the label decides once the user resolves it
            elif not decision.planned:
                out.unstarted.append(decision.id)
            else:
                out.to_check.append(decision)
        return out

    def settle(self, stale: Stale, mailboxes: Mapping[str, frozenset[str]]) -> None:
        """Close what ``stale`` found; ``mailboxes``: where its planned emails are now
        (an email missing was deleted since, which says nothing against the plan)."""
        if self._ledger is None:
            return
        done, stopped = [], {}
        for decision in stale.to_check:
            moves = decision.effects.moves
            as_planned = all(mailboxes.get(m.email, m.after) == m.after for m in moves)
            if moves and as_planned:
                done.append(decision.id)
            else:
                stopped[decision.id] = PART_WAY if moves else UNCHECKED
        stopped.update({i: SUPERSEDED for i in stale.superseded})
        if done:
            self._ledger.finish(done, note=COMPLETED)
        self._ledger.stop(stopped)
        self._ledger.fail({i: UNSTARTED for i in stale.unstarted})


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
