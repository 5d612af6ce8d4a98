"""What undoing a decision does, from the ledger and the account as it is now (pure).

A decision is taken back exactly: the groups it joined are left and those it
left joined again; each email it re-filed goes back to the mailboxes it had
before, but only if it is still exactly where the decision put it (an email
the user moved or deleted since is left alone, and listed). Triage and error
labels are never put back: they would ask for the decision again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mailroom.contacts import uids
from mailroom.contacts.book import Known
from mailroom.ledger.model import Decision, DecisionKind, EmailMove, Outcome

MOVED = "moved since"
DELETED = "deleted since"


@dataclass(frozen=True)
class UndoPlan:
    decision: Decision  # the one taken back
    join: tuple[str, ...]  # groups to join again (it left them)
    leave: tuple[str, ...]  # groups to leave (it joined them)
    restore: Mapping[str, EmailMove] = field(default_factory=dict)  # email -> now -> then
    left_alone: Mapping[str, str] = field(default_factory=dict)  # email -> why
    delete_contact: bool = False  # the contact Mailroom made, nobody changed since
    contact_kept: str | None = None  # why the contact Mailroom made stays

    @property
    def sender(self) -> str:
        return self.decision.intent.subject

    @property
    def back_to(self) -> str:
        return self.decision.effects.previous or "the Screener"

    @property
    def touches_contact(self) -> bool:
        return bool(self.join or self.leave or self.delete_contact)


def undoable(decisions: Sequence[Decision]) -> Decision | None:
    """The sender's latest triage still standing (``decisions`` newest first): done,
    or stopped part-way (what landed of it is taken back), and not undone.

    Undo walks back: after one undo, the next takes back the triage before it.
    """
    undone = {
        d.intent.undoes
        for d in decisions
        if d.intent.kind is DecisionKind.UNDO and d.outcome is Outcome.DONE
    }
    for d in decisions:
        if d.intent.kind is DecisionKind.TRIAGE and d.outcome.stands and d.id not in undone:
            return d
    return None


def plan_undo(
    decision: Decision, now: Mapping[str, frozenset[str]], labels: frozenset[str]
) -> UndoPlan:
    """``now``: the mailboxes of the decision's emails that still exist; ``labels``:
    the label mailbox ids (triage, error, back-to-Screener). An undo never puts a
    label back nor takes one off (one the user put on since is a request of
    theirs), and a label is not a move by the user. An email already back where
    it was (an undo interrupted and run again) is simply done."""
    restore: dict[str, EmailMove] = {}
    left_alone: dict[str, str] = {}
    for move in decision.effects.moves:
        current = now.get(move.email)
        target = move.before - labels
        if current is None:
            left_alone[move.email] = DELETED
        elif current - labels == target:
            continue  # back already
        elif _between(current - labels, move.before - labels, move.after - labels) and target:
            # A move cut short between its two steps (the new mailboxes added,
            # all or those the server filed, the old not yet removed), the
            # decision's or an earlier undo's: Mailroom's own doing, not the user's.
            restore[move.email] = EmailMove(move.email, current, target | (current & labels))
        elif current - labels != move.after - labels:
            left_alone[move.email] = MOVED
        elif target:
            restore[move.email] = EmailMove(move.email, current, target | (current & labels))
    e = decision.effects
    return UndoPlan(
        decision=decision,
        join=tuple(e.left),
        leave=tuple(g for g in e.joined if g not in e.left),
        restore=restore,
        left_alone=left_alone,
    )


def _between(current: frozenset[str], before: frozenset[str], after: frozenset[str]) -> bool:
    """Where a move from ``before`` to ``after`` (or its undo, back) leaves an
    email when cut after its first step: all of one side and part or all of
    the other, nothing else (a move adds first and removes only once every new
    mailbox shows the email)."""
    return current <= before | after and (current >= before or current >= after)


def with_contact(plan: UndoPlan, known: Known | None) -> UndoPlan:
    """Whether the undo deletes the contact the decision made: only when it is
    still exactly what Mailroom wrote and in no group once the undo is done."""
    e = plan.decision.effects
    if not e.contact_created or plan.join:
        return plan
    why = None
    if known is None or known.uid is None:
        why = "it is gone already"
    elif e.contact_uid is not None and not uids.same(known.uid, e.contact_uid):
        why = "the sender's contact is another one now"
    elif known.groups - set(plan.leave):
        why = f"it is in groups {', '.join(sorted(known.groups - set(plan.leave)))}"
    elif not known.pristine:
        why = "it was changed since Mailroom made it"
    if why is None:
        return dataclasses.replace(plan, delete_contact=True)
    return dataclasses.replace(plan, contact_kept=why)


def describe(plan: UndoPlan, names: Mapping[str, str]) -> list[str]:
    """The plan for a person, one line each."""
    d = plan.decision
    lines = [f"undo: {plan.sender} back from {d.intent.category} to {plan.back_to}"]
    if plan.leave:
        lines.append(f"  leave groups: {', '.join(plan.leave)}")
    if plan.join:
        lines.append(f"  join groups again: {', '.join(plan.join)}")

    def boxes(ids: frozenset[str]) -> str:
        return ", ".join(sorted(names.get(i, f"mailbox {i}") for i in ids))

    for email, move in sorted(plan.restore.items()):
        lines.append(f"  email {email}: {boxes(move.before)} -> {boxes(move.after)}")
    for email, why in sorted(plan.left_alone.items()):
        lines.append(f"  email {email}: left alone ({why})")
    if d.moves_pruned:
        lines.append(f"  {PRUNED}")
    if plan.delete_contact:
        lines.append("  delete the contact Mailroom made (nobody changed it since)")
    elif plan.contact_kept and plan.contact_kept != "it is gone already":
        lines.append(f"  {KEPT}: {plan.contact_kept}")
        lines.append(f"    {NO_GROUP}")
    return lines


KEPT = "the contact Mailroom made stays"
PRUNED = (
    "its emails stay where they are: where each was before this decision is past the "
    "ledger's retention (MAILROOM_LEDGER_RETENTION_DAYS)"
)
NO_GROUP = (
    "a contact in no group still skips the Screener under Fastmail's usual rules: "
    "delete it by hand to have the sender screened again"
)
