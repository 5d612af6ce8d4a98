"""Reading the ledger: what is pending, a subject's trail, what stands, the
domain rules, and the one definition of "what stands" in SQL.

:class:`~mailroom.ledger.store.Ledger` adds the writes (one transaction each)
on the same connection; everything here only reads.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailroom.core.chunks import chunked
from mailroom.ledger.model import AccountKey, Decision, EmailMove
from mailroom.ledger.rows import decision_of, like_pattern, moves_of
from mailroom.ledger.sqlite_file import LedgerError, explain

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


@dataclass(frozen=True)
class Filter:
    """Which decisions ``history`` returns (all of them when empty)."""

    subject: str | None = None  # an address, or "@domain" for the domain and its senders
    category: str | None = None
    since: float | None = None  # Unix seconds
    limit: int = 1000
    exact: bool = False  # "@domain": the domain's own decisions only, not its senders'


class LedgerReader:
    """The reads of :class:`~mailroom.ledger.store.Ledger`, on its connection."""

    _conn: sqlite3.Connection
    path: Path

    def account(self) -> AccountKey | None:
        """The account this ledger records, once bound."""
        try:
            row = self._conn.execute(
                "SELECT origin, username, account_id FROM account WHERE id = 1"
            ).fetchone()
        except sqlite3.Error as exc:
            raise LedgerError(explain(self.path, exc)) from None
        return AccountKey(row[0], row[1], row[2]) if row is not None else None

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
                args += [subject, f"%@{like_pattern(domain)}", f"%.{like_pattern(domain)}"]
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
        takes back, round after round, until nothing stands. Mailing lists are
        not among them (``list_rules``: no contact to take back)."""
        skipped = sorted(set(skip))
        marks = ",".join("?" * len(skipped))
        return self._select(
            "WHERE id IN (SELECT MAX(id) FROM decisions AS d WHERE kind = 'triage' "  # noqa: S608
            f"AND {STANDS} AND NOT EXISTS (SELECT 1 FROM decisions AS u WHERE "
            "u.undoes = d.id AND u.kind = 'undo' AND u.outcome = 'done') "
            f"AND subject NOT LIKE 'list:%' AND subject NOT IN ({marks}) GROUP BY subject) "
            "ORDER BY id DESC LIMIT ?",
            (*skipped, limit),
        )

    def list_rules(self) -> dict[str, Decision]:
        """The mailing-list decisions in force: each list's latest decided by a
        label or a command (not a pass's filing by rule), done and not taken
        back; list id -> its decision."""
        rules = self._select(
            "WHERE id IN (SELECT MAX(id) FROM decisions AS d WHERE kind = 'triage' "  # noqa: S608
            f"AND {STANDS} AND subject LIKE 'list:%' AND rule IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM decisions AS u WHERE u.undoes = d.id AND u.kind = 'undo' "
            "AND u.outcome != 'failed') GROUP BY subject)",
            (),
        )
        return {d.intent.subject.removeprefix("list:"): d for d in rules}

    def filed_by(self, rule: int) -> list[Decision]:
        """What passes filed by a list rule and still stands (not taken back)."""
        return self._select(
            "WHERE kind = 'triage' AND outcome = 'done' AND rule = ? AND NOT EXISTS "
            "(SELECT 1 FROM decisions AS u WHERE u.undoes = decisions.id AND u.kind = 'undo' "
            "AND u.outcome = 'done') ORDER BY id DESC",
            (rule,),
        )

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

    def ever_decided(self, addresses: Iterable[str]) -> set[str]:
        """Those of ``addresses`` with any decision done (a triage or an undo): the
        user, a rule or a reset has had a say. One stopped part-way does not
        count: what started it tries again."""
        out: set[str] = set()
        for chunk in chunked(sorted(set(addresses)), MAX_VARIABLES):
            marks = ",".join("?" * len(chunk))
            try:
                rows = self._conn.execute(
                    "SELECT DISTINCT subject FROM decisions WHERE outcome = 'done' "  # noqa: S608
                    f"AND kind IN ('triage', 'undo') AND subject IN ({marks})",
                    chunk,
                ).fetchall()
            except sqlite3.Error as exc:
                raise LedgerError(explain(self.path, exc)) from None
            out.update(r[0] for r in rows)
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
                    moves[m["decision"]] = moves_of(m["moves"])
        except sqlite3.Error as exc:
            raise LedgerError(explain(self.path, exc)) from None
        return [decision_of(row, moves.get(row["id"], [])) for row in rows]
