"""Decisions in and out of the ledger file (opened by :mod:`sqlite_file`).

A pass writes all its intents in one transaction before the account is
touched, its plan in one more before carrying it out, and its outcomes in one
after; any failure to write is a :class:`LedgerError` naming the file and the fix.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailroom.core.chunks import chunked
from mailroom.ledger.model import (
    AccountKey,
    Decision,
    DecisionKind,
    Effects,
    EmailMove,
    Intent,
    Outcome,
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
TRAIL = 10_000  # a subject's decisions read to find its latest, or the one to take back
MAX_VARIABLES = 500  # bound parameters per statement (SQLite's floor is 999)
# What stands: a decision that may have changed the account (done, or stopped
# part-way). The one definition, in SQL (``Outcome.stands`` is the same in Python).
STANDS = "outcome IN ('done', 'partial')"
# What counts in a subject's trail: a triage that stands, or an undo carried out.
COUNTS = (
    "((kind = 'triage' AND outcome IN ('done', 'partial')) OR (kind = 'undo' AND outcome = 'done'))"
)
# Still open: being carried out or interrupted (pending), or stopped part-way.
OPEN = "outcome IN ('pending', 'partial')"


class LedgerAccountError(LedgerError):
    """The ledger records another account: nothing is written to either."""


@dataclass(frozen=True)
class Filter:
    """Which decisions ``history`` returns (all of them when empty)."""

    subject: str | None = None  # an address, or "@domain" for the domain and its senders
    category: str | None = None
    since: float | None = None  # Unix seconds
    limit: int = 1000
    exact: bool = False  # "@domain": the domain's own decisions only, not its senders'


class Ledger:
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
                    rows.append((last, now, *_intent_row(intent)))
                decision, outcome = reusable[key]
                if outcome == "partial":
                    reopened.append((decision,))
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
            merged = {i: _merge(earlier.get(i), e) for i, e in planned.items()}
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
                        _list(e.filled),
                        _list(e.joined),
                        _list(e.left),
                        decision,
                    )
                    for decision, e in merged.items()
                ),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO decision_moves (decision, moves) VALUES (?, ?)",
                (
                    (decision, _moves_text(e.moves))
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
        """Nothing of these was written: the labels stay and the next pass tries again."""
        self._stop(failed, Outcome.FAILED)

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

    # -- the account ---------------------------------------------------------------

    def account(self) -> AccountKey | None:
        """The account this ledger records, once bound."""
        try:
            row = self._conn.execute(
                "SELECT origin, username, account_id FROM account WHERE id = 1"
            ).fetchone()
        except sqlite3.Error as exc:
            raise LedgerError(explain(self.path, exc)) from None
        return AccountKey(row[0], row[1], row[2]) if row is not None else None

    def check(self, key: AccountKey) -> None:
        """Refuse (:class:`LedgerAccountError`) if the ledger records another account;
        writes nothing (a dry run's check)."""
        found = self.account()
        if found is not None and not found.same(key):
            raise self._other(found, key)

    def bind(self, key: AccountKey) -> None:
        """Record the account on first use; refuse (:class:`LedgerAccountError`,
        naming both and the fix) if the ledger records another one.

        A ledger from before accounts were recorded is bound to the first
        account it is used with: until then it served exactly one.
        """
        with self._write() as conn:
            row = conn.execute(
                "SELECT origin, username, account_id FROM account WHERE id = 1"
            ).fetchone()
            found = AccountKey(row[0], row[1], row[2]) if row is not None else None
            if found is not None and not found.same(key):
                raise self._other(found, key)
            if found != key:  # first use, or the same server at another port
                conn.execute(
                    "INSERT OR REPLACE INTO account (id, origin, username, account_id, bound) "
                    "VALUES (1, ?, ?, ?, ?)",
                    (key.origin, key.username, key.account_id, self._clock()),
                )
        self._key = key

    def _other(self, found: AccountKey, key: AccountKey) -> LedgerAccountError:
        return LedgerAccountError(
            f"ledger {self.path} records the decisions of {found}, not of {key}: "
            "nothing was written. Give each account its own state directory "
            "(MAILROOM_STATE_DIR, or one systemd template instance per account), "
            "or point the settings back at the account this ledger records"
        )

    def prune(self, older_than: float) -> int:
        """Drop the email-level detail of decisions finished before ``older_than``;
        the decisions themselves stay. Returns how many emails' moves went."""
        with self._write() as conn:
            gone = sum(
                len(_moves(row[0]))
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

    # -- reading ----------------------------------------------------------------

    def pending(self) -> list[Decision]:
        """Intents a killed pass left: the next pass completes or fails them."""
        return self._select("WHERE outcome = 'pending' ORDER BY id", ())

    def history(self, which: Filter = Filter()) -> list[Decision]:
        """Decisions, newest first."""
        clauses: list[str] = []
        args: list[object] = []
        if which.subject is not None:
            subject = which.subject.lower()
            if subject.startswith("@") and not which.exact:
                domain = subject[1:]
                clauses.append(
                    "(subject = ? OR subject LIKE ? ESCAPE '\\' OR subject LIKE ? ESCAPE '\\')"
                )
                args += [subject, f"%@{_like(domain)}", f"%.{_like(domain)}"]
            else:
                clauses.append("subject = ?")
                args.append(subject)
        if which.category is not None:
            clauses.append("category = ?")
            args.append(which.category)
        if which.since is not None:
            clauses.append("started >= ?")
            args.append(which.since)
        where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        return self._select(f"{where}ORDER BY id DESC LIMIT ?", (*args, which.limit))

    def standing(self, limit: int, skip: Iterable[str] = ()) -> list[Decision]:
        """Each subject's latest triage still standing (done, not undone), newest
        first, at most ``limit``, none of the subjects in ``skip``: what ``reset``
        takes back, round after round, until nothing stands."""
        skipped = sorted(set(skip))
        marks = ",".join("?" * len(skipped))
        return self._select(
            "WHERE id IN (SELECT MAX(id) FROM decisions AS d WHERE kind = 'triage' "  # noqa: S608
            f"AND {STANDS} AND NOT EXISTS (SELECT 1 FROM decisions AS u WHERE "
            "u.undoes = d.id AND u.kind = 'undo' AND u.outcome = 'done') "
            f"AND subject NOT IN ({marks}) GROUP BY subject) ORDER BY id DESC LIMIT ?",
            (*skipped, limit),
        )

    # -- whole-domain rules -------------------------------------------------------

    def domain_rules(self) -> dict[str, Decision]:
        """The domain decisions in force: each domain's latest that is done and not
        being (or been) taken back; domain (without the "@") -> its decision."""
        rules = self._select(
            "WHERE id IN (SELECT MAX(id) FROM decisions AS d WHERE kind = 'triage' "  # noqa: S608
            f"AND {STANDS} AND subject LIKE '@%' AND NOT EXISTS (SELECT 1 FROM "
            "decisions AS u WHERE u.undoes = d.id AND u.kind = 'undo' "
            "AND u.outcome != 'failed') GROUP BY subject)",
            (),
        )
        return {d.intent.subject[1:]: d for d in rules}

    def decided(self, addresses: Iterable[str]) -> set[str]:
        """Those of ``addresses`` a decision of their own governs: their latest done
        decision is a triage, or an undo of them alone (not one a domain's undo
        or a reset made). A domain rule never triages them: a single address wins."""
        out: set[str] = set()
        for chunk in chunked(sorted(set(addresses)), MAX_VARIABLES):
            marks = ",".join("?" * len(chunk))
            try:
                rows = self._conn.execute(
                    "SELECT subject, kind, rule, trigger FROM decisions WHERE id IN "  # noqa: S608
                    f"(SELECT MAX(id) FROM decisions WHERE {COUNTS} "
                    f"AND subject IN ({marks}) GROUP BY subject)",
                    chunk,
                ).fetchall()
            except sqlite3.Error as exc:
                raise LedgerError(explain(self.path, exc)) from None
            out.update(
                r[0] for r in rows if not (r[1] == "undo" and (r[2] is not None or r[3] == "reset"))
            )
        return out

    def ruled_by(self, rules: Iterable[int]) -> list[Decision]:
        """The senders' decisions that still stand because of these domain rules:
        each sender's latest done decision, when it is a triage one of them made."""
        wanted = sorted(set(rules))
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        return self._select(
            f"WHERE id IN (SELECT MAX(id) FROM decisions WHERE {COUNTS} "  # noqa: S608
            "AND subject IN (SELECT subject FROM decisions WHERE rule IN "
            f"({marks})) GROUP BY subject) AND kind = 'triage' AND rule IN ({marks}) "
            "ORDER BY id",
            (*wanted, *wanted),
        )

    def planned_uids(self, subjects: Iterable[str]) -> dict[str, str]:
        """The uid an open decision (pending, or stopped part-way) planned for a
        contact it was making, per subject: a retry makes the contact under that
        uid, so the contact that exists is the one the ledger names."""
        out: dict[str, str] = {}
        for chunk in chunked(sorted(set(subjects)), MAX_VARIABLES):
            marks = ",".join("?" * len(chunk))
            for d in self._select(
                f"WHERE {OPEN} AND kind = 'triage' AND contact_created = 1 "
                f"AND contact_uid IS NOT NULL AND subject IN ({marks}) ORDER BY id",
                chunk,
            ):
                out[d.intent.subject] = str(d.effects.contact_uid)
        return out

    def fills_after(self, made: Decision) -> list[Decision]:
        """The sender's decisions after ``made`` that filled empty fields of a
        contact (``contact_uid`` says which): Mailroom's own writes, never a
        change by someone else; those that may not have landed included."""
        return self._select(
            f"WHERE subject = ? AND id > ? AND kind = 'triage' AND {STANDS} "
            "AND filled != '[]' ORDER BY id",
            (made.intent.subject, made.id),
        )

    def mailbox_names(self) -> dict[str, str]:
        """Mailbox id -> name, as it was when a decision last moved mail there."""
        try:
            return {row[0]: row[1] for row in self._conn.execute("SELECT id, name FROM mailboxes")}
        except sqlite3.Error as exc:
            raise LedgerError(explain(self.path, exc)) from None

    def decision(self, decision: int) -> Decision | None:
        found = self._select("WHERE id = ?", (decision,))
        return found[0] if found else None

    def _rows(self, conn: sqlite3.Connection, tail: str, ids: Iterable[int]) -> list[Decision]:
        """The decisions ``tail`` (with one ``?`` for the id) selects, one id at a time."""
        out = []
        for decision in ids:
            out += self._select(tail, (decision,), conn)
        return out

    def _select(
        self, tail: str, args: Iterable[Any], conn: sqlite3.Connection | None = None
    ) -> list[Decision]:
        # ``tail`` is built from constant SQL only; every value is bound.
        conn = conn or self._conn
        try:
            rows = conn.execute(
                f"SELECT * FROM decisions {tail}",  # noqa: S608
                tuple(args),
            ).fetchall()
            moves: dict[int, list[EmailMove]] = {}
            for chunk in chunked([row["id"] for row in rows], MAX_VARIABLES):
                marks = ",".join("?" * len(chunk))
                for m in conn.execute(
                    f"SELECT * FROM decision_moves WHERE decision IN ({marks})",  # noqa: S608
                    chunk,
                ):
                    moves[m["decision"]] = _moves(m["moves"])
        except sqlite3.Error as exc:
            raise LedgerError(explain(self.path, exc)) from None
        return [_decision(row, moves.get(row["id"], [])) for row in rows]

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


def _merge(earlier: Effects | None, now: Effects) -> Effects:
    """A plan made again over one an interrupted pass had begun to carry out."""
    if earlier is None:
        return now
    first = {m.email: m for m in earlier.moves}
    moves = {m.email: m for m in earlier.moves}
    for m in now.moves:
        was = first.get(m.email)
        moves[m.email] = m if was is None else EmailMove(m.email, was.before, m.after)
    return Effects(
        previous=earlier.previous or now.previous,
        contact_id=earlier.contact_id or now.contact_id,
        contact_uid=earlier.contact_uid or now.contact_uid,
        contact_created=earlier.contact_created or now.contact_created,
        contact_name=earlier.contact_name if earlier.contact_created else now.contact_name,
        contact_kind=earlier.contact_kind if earlier.contact_created else now.contact_kind,
        filled=tuple(dict.fromkeys((*earlier.filled, *now.filled))),
        joined=tuple(dict.fromkeys((*earlier.joined, *now.joined))),
        left=tuple(dict.fromkeys((*earlier.left, *now.left))),
        moves=tuple(moves[e] for e in sorted(moves)),
    )


def _intent_row(intent: Intent) -> tuple[object, ...]:
    return (
        intent.subject,
        intent.kind.value,
        intent.category,
        intent.trigger,
        intent.label_email,
        intent.undoes,
        intent.rule,
    )


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _list(items: Iterable[str]) -> str:
    """A JSON array of strings; thousands per pass, so straight to the C string encoder."""
    return "[" + ",".join(map(_quote, items)) + "]"


_quote = json.encoder.encode_basestring


def _moves_text(moves: Iterable[EmailMove]) -> str:
    """A decision's emails as one JSON array of [before, after, [emails]], grouped
    by where they were and where they went (a sender's mail mostly moves
    together: thousands of emails per pass become a few hundred groups, built
    with the C string encoder as ``_list``)."""
    groups: dict[tuple[frozenset[str], frozenset[str]], list[str]] = {}
    for m in moves:
        groups.setdefault((m.before, m.after), []).append(m.email)
    return (
        "["
        + ",".join(
            sorted(
                f"[{_list(sorted(before))},{_list(sorted(after))},{_list(sorted(emails))}]"
                for (before, after), emails in groups.items()
            )
        )
        + "]"
    )


def _moves(text: str) -> list[EmailMove]:
    moves = [
        EmailMove(email, frozenset(before), frozenset(after))
        for before, after, emails in json.loads(text)
        for email in emails
    ]
    moves.sort(key=lambda m: m.email)
    return moves


def _decision(row: sqlite3.Row, moves: list[EmailMove]) -> Decision:
    intent = Intent(
        subject=row["subject"],
        kind=DecisionKind(row["kind"]),
        category=row["category"],
        trigger=row["trigger"],
        label_email=row["label_email"],
        undoes=row["undoes"],
        rule=row["rule"],
    )
    effects = Effects(
        previous=row["previous"],
        contact_id=row["contact_id"],
        contact_uid=row["contact_uid"],
        contact_created=bool(row["contact_created"]),
        contact_name=row["contact_name"],
        contact_kind=row["contact_kind"],
        filled=tuple(json.loads(row["filled"])),
        joined=tuple(json.loads(row["joined"])),
        left=tuple(json.loads(row["left_groups"])),
        moves=tuple(moves),
    )
    return Decision(
        id=row["id"],
        started=row["started"],
        finished=row["finished"],
        intent=intent,
        outcome=Outcome(row["outcome"]),
        reason=row["reason"],
        effects=effects,
        moves_pruned=bool(row["moves_pruned"]),
        planned=bool(row["planned"]),
    )
