"""The ledger's records: typed, free of SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class DecisionKind(StrEnum):
    TRIAGE = "triage"  # a sender (or a domain) put in a category
    UNDO = "undo"  # an earlier decision taken back


class Outcome(StrEnum):
    PENDING = "pending"  # the intent is written, the account may be part-way
    DONE = "done"
    FAILED = "failed"  # nothing of it stands (labels kept; retried as a new intent)


@dataclass(frozen=True)
class EmailMove:
    """One email re-filed: its mailbox ids before and after."""

    email: str
    before: frozenset[str]
    after: frozenset[str]


@dataclass(frozen=True)
class Intent:
    """What a pass is about to do for one subject, written before the account is."""

    subject: str  # a lower-case address, or "@domain"
    kind: DecisionKind
    category: str | None  # None: back to the Screener
    trigger: str  # a pass trigger, or "cli"
    label_email: str | None = None  # the labelled email it came from
    undoes: int | None = None  # for an undo: the decision it takes back
    # The domain decision ("@acme.example") this sender's decision follows from:
    # triaged by a whole-domain rule, or taken back with it.
    rule: int | None = None


@dataclass(frozen=True)
class Effects:
    """What a decision did to the account, written once it is done."""

    previous: str | None = None  # the category the sender was in before (a re-triage)
    contact_id: str | None = None
    contact_uid: str | None = None
    contact_created: bool = False
    # On a contact Mailroom made: the name and kind ("person", "company") it wrote.
    contact_name: str | None = None
    contact_kind: str | None = None
    filled: tuple[str, ...] = ()  # the contact's fields Mailroom filled
    joined: tuple[str, ...] = ()  # contact groups
    left: tuple[str, ...] = ()
    moves: tuple[EmailMove, ...] = ()


@dataclass(frozen=True)
class Decision:
    id: int
    started: float  # Unix seconds
    finished: float | None
    intent: Intent
    outcome: Outcome
    reason: str | None = None
    effects: Effects = field(default_factory=Effects)
    moves_pruned: bool = False  # the email-level detail is past its retention
