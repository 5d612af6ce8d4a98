"""One pass's typed records: what happened to each sender, and the pass as a whole."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mailroom.contacts.book import Change, Known
from mailroom.jmap.wire import SetOutcome
from mailroom.triage.scan import SenderWork


class Stage(StrEnum):
    """How far a sender got; each step moves the senders still alive one stage on."""

    PLANNED = "planned"  # labelled, its category known
    LOOKED_UP = "looked up"  # what the address book has for it, and its groups to change
    MAIL_FOUND = "mail found"  # every email of it
    GROUPED = "grouped"  # contact written, groups joined and left
    REFILED = "refiled"  # its mail where the category puts it
    UNLABELLED = "unlabelled"  # its labels off: triaged
    FAILED = "failed"  # left for the next pass, labels kept
    FLAGGED = "flagged"  # given the error label: the user must decide


@dataclass
class SenderRecord:
    work: SenderWork
    stage: Stage = Stage.PLANNED
    known: Known | None = None
    change: Change | None = None
    mail: dict[str, frozenset[str]] = field(default_factory=dict)  # email id -> mailboxes
    refiled: dict[str, dict[str, Any]] = field(default_factory=dict)  # email id -> patch
    unlabelled: dict[str, dict[str, Any]] = field(default_factory=dict)  # email id -> patch
    reason: str | None = None  # why it failed or was flagged
    # Its writes began (the contacts write was sent): failing after this, what
    # landed stands in the ledger as a decision stopped part-way.
    wrote: bool = False

    @property
    def sender(self) -> str:
        return self.work.sender

    @property
    def alive(self) -> bool:
        return self.stage not in (Stage.FAILED, Stage.FLAGGED)


@dataclass
class PassResult:
    """What one poll did, and the JMAP states it saw and produced."""

    triaged: Counter[str] = field(default_factory=Counter)  # category -> senders
    senders: list[tuple[str, str]] = field(default_factory=list)  # (address, category)
    emails_refiled: int = 0
    sent_back: int = 0  # senders put back in the Screener (the back-to-Screener label)
    conflicts: int = 0  # senders whose emails got the error label
    failures: int = 0  # senders left for the next poll
    unflagged: int = 0  # emails that refused the error label
    missing: set[str] = field(default_factory=set)  # what the account lost, for /health
    off: set[str] = field(default_factory=set)  # optional labels missing: features off
    last_error: str | None = None  # of the last sender that failed
    # States the server reported when the scan ran, and those Mailroom's own
    # writes produced: push events carrying only the latter are echoes.
    seen_states: dict[str, str] = field(default_factory=dict)
    own_states: dict[str, set[str]] = field(
        default_factory=lambda: {"Email": set(), "Mailbox": set()}
    )
    foreign_write: bool = False  # another client changed the account during the pass

    @property
    def senders_triaged(self) -> int:
        return sum(self.triaged.values())

    def record(self, outcome: SetOutcome) -> None:
        # A write's newState is an echo of Mailroom's own only while the chain
        # holds: its oldState is the state the scan saw or one Mailroom's
        # writes made. Once another client's change slips in between, every
        # later state carries that change too, and a push of it is news.
        own = self.own_states["Email"]
        for before, after in outcome.written:
            chained = before is not None and (
                before == self.seen_states.get("Email") or before in own
            )
            self.foreign_write = self.foreign_write or not chained
            if not self.foreign_write:
                own.add(after)
        if outcome.mailbox_state is not None:
            self.own_states["Mailbox"].add(outcome.mailbox_state)
        self.own_states["Mailbox"].update(outcome.mailbox_states)
