"""What undoing a decision does, from the ledger and the account as it is now (pure).

A decision is taken back exactly: the groups it joined are left and those it
left joined again; each email it re-filed goes back to the mailboxes it had
before, but only if it is still exactly where the decision put it (an email
the user moved or deleted since is left alone, and listed). Triage and error
labels are never put back: they would ask for the decision again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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

    @property
    def back_to(self) -> str:
        return self.decision.effects.previous or "the Screener"


def undoable(decisions: Sequence[Decision]) -> Decision | None:
    """The sender's latest triage still standing (``decisions`` newest first).

    Undo walks back: after one undo, the next takes back the triage before it.
    """
    undone = {
        d.intent.undoes
        for d in decisions
        if d.intent.kind is DecisionKind.UNDO and d.outcome is Outcome.DONE
    }
    for d in decisions:
        if (
            d.intent.kind is DecisionKind.TRIAGE
            and d.outcome is Outcome.DONE
            and d.id not in undone
        ):
            return d
    return None


def plan_undo(
    decision: Decision, now: Mapping[str, frozenset[str]], labels: frozenset[str]
) -> UndoPlan:
    """``now``: the mailboxes of the decision's emails that still exist; ``labels``:
    the triage and error label mailbox ids, never restored."""
    restore: dict[str, EmailMove] = {}
    left_alone: dict[str, str] = {}
    for move in decision.effects.moves:
        current = now.get(move.email)
        if current is None:
            left_alone[move.email] = DELETED
        elif current != move.after:
            left_alone[move.email] = MOVED
        else:
            target = move.before - labels
            if target and target != current:
                restore[move.email] = EmailMove(move.email, current, target)
    e = decision.effects
    return UndoPlan(
        decision=decision,
        join=tuple(e.left),
        leave=tuple(g for g in e.joined if g not in e.left),
        restore=restore,
        left_alone=left_alone,
    )


def describe(plan: UndoPlan, sender: str, names: Mapping[str, str]) -> list[str]:
    """The plan for a person, one line each."""
    d = plan.decision
    lines = [f"undo: {sender} back from {d.intent.category} to {plan.back_to}"]
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
    if d.effects.contact_created:
        lines.append(
            "  the contact Mailroom made stays (in no Mailroom group); a contact in no "
            "group still skips the Screener under Fastmail's usual rules: delete it if so"
        )
    return lines
