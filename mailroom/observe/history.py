"""The recent past, in memory, for the status page: last passes and last triaged senders
(the senders seeded from the ledger at start).

Bounded rings: a year of uptime costs the same memory as a minute.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

PASSES_KEPT = 20
SENDERS_KEPT = 50


@dataclass(frozen=True)
class PassEntry:
    at: float  # wall-clock seconds, when it finished
    trigger: str
    senders: int  # senders triaged
    duration: float
    error: str | None  # None: the pass succeeded


@dataclass(frozen=True)
class TriagedEntry:
    at: float
    sender: str  # an address: shown to the person, escaped; never in metrics or logs' labels
    category: str


class History:
    def __init__(self) -> None:
        self.passes: deque[PassEntry] = deque(maxlen=PASSES_KEPT)
        self.senders: deque[TriagedEntry] = deque(maxlen=SENDERS_KEPT)

    def add_pass(self, entry: PassEntry) -> None:
        self.passes.append(entry)

    def add_senders(self, at: float, senders: tuple[tuple[str, str], ...]) -> None:
        for sender, category in senders:
            self.senders.append(TriagedEntry(at, sender, category))

    def add_triaged(self, entries: Iterable[TriagedEntry]) -> None:
        """Earlier decisions (from the ledger, oldest first), so a restart forgets none."""
        self.senders.extend(entries)

    def snapshot(self) -> tuple[tuple[PassEntry, ...], tuple[TriagedEntry, ...]]:
        """Newest first."""
        return tuple(reversed(self.passes)), tuple(reversed(self.senders))
