"""Decisions in and out of the ledger file (opened by :mod:`sqlite_file`).

A pass writes all its intents in one transaction before the account is
touched, its plan in one more before carrying it out, and its outcomes in one
after; any failure to write is a :class:`LedgerError` naming the file and the fix.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailroom.core.chunks import chunked
from mailroom.ledger.model import Decision, DecisionKind, Effects, EmailMove, Intent, Outcome
from mailroom.ledger.sqlite_file import BUSY_TIMEOUT_S, LedgerError, Opened, explain, open_file

MAX_VARIABLES = 500  # bound parameters per statement (SQLite's floor is 999)


@dataclass(frozen=True)
class Filter:
    """Which decisions ``history`` returns (all of them when empty)."""

    subject: str | None = None  # an address, or "@domain" for the domain and its senders
    category: str | None = None
    since: float | None = None  # Unix seconds
    limit: int = 1000
    exact: bool = False  # "@domain": the domain's own decisions only, not its senders'


class Ledger:
    def __init__(self, conn: sqlite3.Connection, path: Path, clock: Callable[[], float]) -> None:
        self._conn = conn
        self.path = path
        self._clock = clock

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
        return cls(conn, path, clock), opened

    def close(self) -> None:
        self._conn.close()

    # -- writing ----------------------------------------------------------------

    def begin(self, intents: Sequence[Intent]) -> list[int]:
        """Write a pass's intents before the account is touched; returns their ids.

        One transaction for the whole pass. A pending intent for the same
        subject and category (a pass killed part-way, whichever of the
        sender's emails carries the label now) is reused, so one decision is
        never recorded twice.
        """
        with self._write() as conn:
            now = self._clock()
            pending = {
                (row[1], row[2], row[3], row[4]): int(row[0])
                for row in conn.execute(
                    "SELECT id, subject, kind, category, undoes FROM decisions "
                    "WHERE outcome = 'pending'"
                )
            }
            # Under the write lock the ids are ours to number: one executemany.
            (last,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM decisions").fetchone()
            ids, rows = [], []
            for intent in intents:
                key = (intent.subject, intent.kind.value, intent.category, intent.undoes)
                if key not in pending:
                    last += 1
                    pending[key] = last
                    rows.append((last, now, *_intent_row(intent)))
                ids.append(pending[key])
            conn.executemany(
                "INSERT INTO decisions (id, started, subject, kind, category, "
                "trigger, label_email, undoes, rule, outcome) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
                rows,
            )
        return ids

    def plan(self, planned: Mapping[int, Effects], names: Mapping[str, str] | None = None) -> None:
        """What each decision is about to do, written before the account is:
        a pass killed while doing it leaves a record of what it meant to do.

        Planned again (the pass after a crash), a decision keeps what the first
        plan knew and the account no longer shows: each email's mailboxes
        before the first attempt, the groups it joined and left, the contact it made.
        """
        with self._write() as conn:
            used = {b for e in planned.values() for m in e.moves for b in (*m.before, *m.after)}
            conn.executemany(
                "INSERT OR REPLACE INTO mailboxes (id, name) VALUES (?, ?)",
                ((i, n) for i, n in (names or {}).items() if i in used),
            )
            # Only a decision planned before (a pass killed part-way) has anything to keep.
            replanned = [
                row[0]
                for chunk in chunked(list(planned), MAX_VARIABLES)
                for row in conn.execute(
                    "SELECT decision FROM decision_moves "  # noqa: S608 (placeholders only)
                    f"WHERE decision IN ({','.join('?' * len(chunk))})",
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
                "filled = ?, joined = ?, left_groups = ? "
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
        """Nothing of these stands: the labels stay and the next pass tries again."""
        with self._write() as conn:
            now = self._clock()
            conn.executemany(
                "UPDATE decisions SET outcome = 'failed', finished = ?, reason = ? "
                "WHERE id = ? AND outcome = 'pending'",
                ((now, reason[:500], decision) for decision, reason in failed.items()),
            )

    def prune(self, older_than: float) -> int:
        """Drop the email-level detail of decisions finished before ``older_than``;
        the decisions themselves stay. Returns how many emails' moves went."""
        with self._write() as conn:
            gone = sum(
                len(json.loads(row[0]))
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
            "AND outcome = 'done' AND NOT EXISTS (SELECT 1 FROM decisions AS u WHERE "
            "u.undoes = d.id AND u.kind = 'undo' AND u.outcome = 'done') "
            f"AND subject NOT IN ({marks}) GROUP BY subject) ORDER BY id DESC LIMIT ?",
            (*skipped, limit),
        )

    # -- whole-domain rules -------------------------------------------------------

    def domain_rules(self) -> dict[str, Decision]:
        """The domain decisions in force: each domain's latest that is done and not
        being (or been) taken back; domain (without the "@") -> its decision."""
        rules = self._select(
            "WHERE id IN (SELECT MAX(id) FROM decisions AS d WHERE kind = 'triage' "
            "AND outcome = 'done' AND subject LIKE '@%' AND NOT EXISTS (SELECT 1 FROM "
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
                    "(SELECT MAX(id) FROM decisions WHERE outcome = 'done' "
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
            "WHERE id IN (SELECT MAX(id) FROM decisions WHERE outcome = 'done' "  # noqa: S608
            "AND subject IN (SELECT subject FROM decisions WHERE rule IN "
            f"({marks})) GROUP BY subject) AND kind = 'triage' AND rule IN ({marks}) "
            "ORDER BY id",
            (*wanted, *wanted),
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

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
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
    """A decision's emails as one JSON array of [email, before, after], by email."""
    return json.dumps(
        sorted([m.email, sorted(m.before), sorted(m.after)] for m in moves),
        separators=(",", ":"),
    )


def _moves(text: str) -> list[EmailMove]:
    return [EmailMove(e, frozenset(b), frozenset(a)) for e, b, a in json.loads(text)]


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
    )
