"""Decisions in and out of the ledger file (opened by :mod:`sqlite_file`).

A pass writes all its intents in one transaction before the account is
touched, its plan in one more before carrying it out, and its outcomes in one
after; any failure to write is a :class:`LedgerError` naming the file and the fix.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from mailroom.core.chunks import chunked
from mailroom.ledger.binding import AccountBinding
from mailroom.ledger.model import (
    AccountKey,
    Effects,
    Intent,
    Outcome,
)
from mailroom.ledger.reading import MAX_VARIABLES, OPEN, LedgerReader
from mailroom.ledger.rows import (
    intent_row,
    json_list,
    merge,
    moves_of,
    moves_text,
)
from mailroom.ledger.sqlite_file import (
    BUSY_TIMEOUT_S,
    LedgerError,
    Opened,
    explain,
    identity,
    open_file,
)

log = logging.getLogger(__name__)


class Ledger(LedgerReader, AccountBinding):
    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        clock: Callable[[], float],
        busy_timeout: float = BUSY_TIMEOUT_S,
    ) -> None:
        self._conn = conn
        self.path = path
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._identity = identity(path)  # the file opened, to notice it replaced
        self._key: AccountKey | None = None  # the account bound, to bind a new file to
        self._named: dict[str, str] = {}  # mailbox names written by this process
        # Decisions stopped part-way and taken up again by this process: what
        # their first attempt wrote stands, so a retry that writes nothing
        # leaves them part-way, never "failed" (which nothing takes back).
        self._reopened: set[int] = set()

    # -- opening ----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = BUSY_TIMEOUT_S,
    ) -> tuple[Ledger, Opened]:
        conn, opened = open_file(path, clock(), busy_timeout)
        return cls(conn, path, clock, busy_timeout), opened

    def close(self) -> None:
        self._conn.close()

    # -- writing ----------------------------------------------------------------

    def begin(self, intents: Sequence[Intent]) -> list[int]:
        """Write a pass's intents before the account is touched; returns their ids.

        One transaction for the whole pass. An open decision for the same
        subject and category is taken up again instead of a new one: a pending
        one (a pass killed part-way, whichever of the sender's emails carries
        the label now), or one stopped part-way that is still the subject's
        latest (the retry finishes it), so one decision is never recorded twice
        and what its first attempt wrote stays in its record.
        """
        with self._write() as conn:
            now = self._clock()
            rows_open = conn.execute(
                "SELECT id, subject, kind, category, undoes, outcome FROM decisions "  # noqa: S608
                f"WHERE {OPEN}"
            ).fetchall()
            latest = self._latest(conn, {row[1] for row in rows_open if row[5] == "partial"})
            reusable: dict[tuple[object, ...], tuple[int, str]] = {}
            for row in rows_open:
                if row[5] == "partial" and latest.get(row[1]) != row[0]:
                    continue  # something was decided after it: it stays as it stopped
                reusable[(row[1], row[2], row[3], row[4])] = (int(row[0]), str(row[5]))
            # Under the write lock the ids are ours to number: one executemany.
            (last,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM decisions").fetchone()
            ids, rows, reopened = [], [], []
            for intent in intents:
                key = (intent.subject, intent.kind.value, intent.category, intent.undoes)
                if key not in reusable:
                    last += 1
                    reusable[key] = (last, "pending")
                    rows.append((last, now, *intent_row(intent)))
                decision, outcome = reusable[key]
                if outcome == "partial":
                    reopened.append((decision,))
                    self._reopened.add(decision)
                    reusable[key] = (decision, "pending")
                ids.append(decision)
            conn.executemany(
                "INSERT INTO decisions (id, started, subject, kind, category, "
                "trigger, label_email, undoes, rule, outcome) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
                rows,
            )
            conn.executemany(
                "UPDATE decisions SET outcome = 'pending', finished = NULL, reason = NULL "
                "WHERE id = ? AND outcome = 'partial'",
                reopened,
            )
        return ids

    @staticmethod
    def _latest(conn: sqlite3.Connection, subjects: Iterable[str]) -> dict[str, int]:
        """Each subject's latest decision id (any outcome but failed)."""
        out: dict[str, int] = {}
        for chunk in chunked(sorted(set(subjects)), MAX_VARIABLES):
            marks = ",".join("?" * len(chunk))
            out.update(
                (row[0], int(row[1]))
                for row in conn.execute(
                    "SELECT subject, MAX(id) FROM decisions "  # noqa: S608 (placeholders)
                    f"WHERE outcome != 'failed' AND subject IN ({marks}) GROUP BY subject",
                    chunk,
                )
            )
        return out

    def plan(self, planned: Mapping[int, Effects], names: Mapping[str, str] | None = None) -> None:
        """What each decision is about to do, written before the account is:
        a pass killed while doing it leaves a record of what it meant to do.

        Planned again (the pass after a crash), a decision keeps what the first
        plan knew and the account no longer shows: each email's mailboxes
        before the first attempt, the groups it joined and left, the contact it made.
        """
        with self._write() as conn:
            # The account's mailbox names, for display: written when new or renamed.
            fresh = [(i, n) for i, n in (names or {}).items() if self._named.get(i) != n]
            conn.executemany("INSERT OR REPLACE INTO mailboxes (id, name) VALUES (?, ?)", fresh)
            self._named.update(fresh)
            # Only a decision planned before (a pass killed or stopped part-way)
            # has anything to keep.
            replanned = [
                row[0]
                for chunk in chunked(list(planned), MAX_VARIABLES)
                for row in conn.execute(
                    "SELECT id FROM decisions WHERE planned = 1 "  # noqa: S608 (placeholders)
                    f"AND id IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
            ]
            earlier = {
                d.id: d.effects
                for d in self._rows(conn, "WHERE outcome = 'pending' AND id = ?", replanned)
            }
            merged = {i: merge(earlier.get(i), e) for i, e in planned.items()}
            conn.executemany(
                "UPDATE decisions SET previous = ?, contact_id = ?, contact_uid = ?, "
                "contact_created = ?, contact_name = ?, contact_kind = ?, "
                "filled = ?, joined = ?, left_groups = ?, planned = 1 "
                "WHERE id = ? AND outcome = 'pending'",
                (
                    (
                        e.previous,
                        e.contact_id,
                        e.contact_uid,
                        int(e.contact_created),
                        e.contact_name,
                        e.contact_kind,
                        json_list(e.filled),
                        json_list(e.joined),
                        json_list(e.left),
                        decision,
                    )
                    for decision, e in merged.items()
                ),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO decision_moves (decision, moves) VALUES (?, ?)",
                (
                    (decision, moves_text(e.moves))
                    for decision, e in merged.items()
                    if e.moves or decision in earlier
                ),
            )

    def finish(self, done: Iterable[int], note: str | None = None) -> None:
        """These decisions did what their plan says (the labels came off last)."""
        with self._write() as conn:
            now = self._clock()
            conn.executemany(
                "UPDATE decisions SET outcome = 'done', finished = ?, reason = ? "
                "WHERE id = ? AND outcome = 'pending'",
                ((now, note, decision) for decision in done),
            )

    def fail(self, failed: Mapping[int, str]) -> None:
        """Nothing of these was written: the labels stay and the next pass tries again.
        One taken up after stopping part-way stays part-way (its first attempt's
        writes stand)."""
        again = {
            d: f"{why} (tried again; what landed before stands)"
            for d, why in failed.items()
            if d in self._reopened
        }
        self._stop(again, Outcome.PARTIAL)
        self._stop({d: why for d, why in failed.items() if d not in again}, Outcome.FAILED)

    def stop(self, stopped: Mapping[int, str]) -> None:
        """These stopped after their writes began: what landed of them stands
        (``partial``) until taken back, or finished by the next attempt."""
        self._stop(stopped, Outcome.PARTIAL)

    def _stop(self, stopped: Mapping[int, str], outcome: Outcome) -> None:
        if not stopped:
            return
        with self._write() as conn:
            now = self._clock()
            conn.executemany(
                "UPDATE decisions SET outcome = ?, finished = ?, reason = ? "
                "WHERE id = ? AND outcome = 'pending'",
                ((outcome.value, now, reason[:500], d) for d, reason in stopped.items()),
            )

    def prune(self, older_than: float) -> int:
        """Drop the email-level detail of decisions finished before ``older_than``;
        the decisions themselves stay. Returns how many emails' moves went."""
        with self._write() as conn:
            gone = sum(
                len(moves_of(row[0]))
                for row in conn.execute(
                    "SELECT moves FROM decision_moves WHERE decision IN (SELECT id FROM "
                    "decisions WHERE finished IS NOT NULL AND finished < ?)",
                    (older_than,),
                )
            )
            conn.execute(
                "DELETE FROM decision_moves WHERE decision IN (SELECT id FROM decisions "
                "WHERE finished IS NOT NULL AND finished < ?)",
                (older_than,),
            )
            conn.execute(
                "UPDATE decisions SET moves_pruned = 1 "
                "WHERE finished IS NOT NULL AND finished < ? AND moves_pruned = 0",
                (older_than,),
            )
        return int(gone)

    def _follow(self) -> None:
        """The file at the path was deleted or replaced while open (by hand, a
        restore): write there, not into the unlinked one nobody else can see."""
        if identity(self.path) == self._identity:
            return
        log.warning(
            "the ledger file was deleted or replaced while in use: writing to the one "
            "at its path now (decisions recorded before are in the old file only)",
            extra={"fields": {"ledger": str(self.path)}},
        )
        self._conn.close()
        self._conn, _ = open_file(self.path, self._clock(), self._busy_timeout)
        self._identity = identity(self.path)
        if self._key is not None:
            self.bind(self._key)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._follow()
        try:
            with self._conn:
                self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
        except sqlite3.Error as exc:
            raise LedgerError(explain(self.path, exc)) from None
