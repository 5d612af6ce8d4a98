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
    # Stopped after its writes began (refused, cut off, superseded): whatever of
    # its plan landed stands, and an undo or reset takes back exactly that. The
    # next attempt at the same decision takes the record up again.
    PARTIAL = "partial"
    FAILED = "failed"  # nothing of it was written (labels kept; retried as a new intent)

    @property
    def stands(self) -> bool:
        """Whether a decision with this outcome may have changed the account."""
        return self in STANDING


STANDING = frozenset({Outcome.DONE, Outcome.PARTIAL})


@dataclass(frozen=True)
class AccountKey:
    """The account a ledger records: its decisions mean nothing anywhere else."""

    origin: str  # the JMAP server's scheme://host[:port]
    username: str
    account_id: str

    def __str__(self) -> str:
        return f"{self.username} (account {self.account_id}) at {self.origin}"

    def same(self, other: AccountKey) -> bool:
        """The same account: user, account and host alike. The scheme and port may
        differ (the server moved behind a proxy or a TLS terminator)."""
        return (self.username, self.account_id, _host(self.origin)) == (
            other.username,
            other.account_id,
            _host(other.origin),
        )


def _host(origin: str) -> str:
    host = origin.partition("://")[2] or origin
    if host.startswith("["):  # an IPv6 literal: [::1]:8080
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if ":" in host else host


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
    # On a contact Mailroom made or filled: the name and kind ("person",
    # "company") it wrote.
    contact_name: str | None = None
    contact_kind: str | None = None
    # The contact's empty fields Mailroom filled (with ``contact_name`` and
    # ``contact_kind`` saying for whom): an undo knows these as its own writes.
    filled: tuple[str, ...] = ()
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
    planned: bool = False  # its plan was written: its writes may have begun


def undoing(decision: Decision, trigger: str, rule: int | None = None) -> Intent:
    """The intent that takes ``decision`` back: its subject back to the category before."""
    return Intent(
        subject=decision.intent.subject,
        kind=DecisionKind.UNDO,
        category=decision.effects.previous,
        trigger=trigger,
        undoes=decision.id,
        rule=rule,
    )
