"""The recent past for the status page: last passes (in memory) and last decisions.

The decisions are read from the ledger when the page is drawn (``source``), so
they survive restarts and show what the command line did too (undos, domain
rules); without a ledger (a dry run), or while it cannot be read, the senders
the passes of this run triaged. Bounded rings: a year of uptime costs the same
memory as a minute.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

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
    note: str = ""  # how it was decided, when not by a label: "undo", "whole domain", …


class History:
    def __init__(self) -> None:
        self.passes: deque[PassEntry] = deque(maxlen=PASSES_KEPT)
        self.senders: deque[TriagedEntry] = deque(maxlen=SENDERS_KEPT)
        # The ledger's latest decisions, newest first (set by the service).
        self.source: Callable[[], Sequence[TriagedEntry]] | None = None

    def add_pass(self, entry: PassEntry) -> None:
        self.passes.append(entry)

    def add_senders(self, at: float, senders: tuple[tuple[str, str], ...]) -> None:
        for sender, category in senders:
            self.senders.append(TriagedEntry(at, sender, category))

    def snapshot(self) -> tuple[tuple[PassEntry, ...], tuple[TriagedEntry, ...]]:
        """Newest first."""
        senders = tuple(reversed(self.senders))
        if self.source is not None:
            try:
                senders = tuple(self.source())[:SENDERS_KEPT]
            except Exception:  # the page still draws: this run's senders instead
                log.warning("cannot read the ledger for the status page", exc_info=True)
        return tuple(reversed(self.passes)), senders
