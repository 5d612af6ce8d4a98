"""The ledger's schema and its migrations, numbered by SQLite's ``user_version``.

Each migration takes the file from the version before it to its own; a file is
brought up to date inside one transaction when it is opened, so a migration
that fails leaves the file as it was. Never edit a migration that has shipped:
add the next one.
"""

from __future__ import annotations

import sqlite3

from mailroom.errors import StorageError

MIGRATIONS: tuple[str, ...] = (
    # 1: decisions, the emails they re-filed, the mailboxes' names (for display).
    """
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        started REAL NOT NULL,
        finished REAL,
        subject TEXT NOT NULL,
        kind TEXT NOT NULL,
        category TEXT,
        previous TEXT,
        trigger TEXT NOT NULL,
        label_email TEXT,
        undoes INTEGER REFERENCES decisions(id),
        outcome TEXT NOT NULL,
        reason TEXT,
        contact_id TEXT,
        contact_uid TEXT,
        contact_created INTEGER NOT NULL DEFAULT 0,
        filled TEXT NOT NULL DEFAULT '[]',
        joined TEXT NOT NULL DEFAULT '[]',
        left_groups TEXT NOT NULL DEFAULT '[]',
        moves_pruned INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX decisions_by_subject ON decisions(subject, id);
    CREATE INDEX decisions_pending ON decisions(outcome) WHERE outcome = 'pending';
    CREATE TABLE moves (
        decision INTEGER NOT NULL REFERENCES decisions(id) ON DELETE CASCADE,
        email TEXT NOT NULL,
        before TEXT NOT NULL,
        after TEXT NOT NULL,
        PRIMARY KEY (decision, email)
    ) WITHOUT ROWID;
    CREATE TABLE mailboxes (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 2: what Mailroom wrote on a contact it made (an undo deletes it only if
    # it still holds exactly that); the domain decision a sender's decision
    # follows from (whole-domain rules); a decision's emails as one row (a JSON
    # array of [email, before, after]): a pass writes 100 rows, not 1,000.
    """
    ALTER TABLE decisions ADD COLUMN contact_name TEXT;
    ALTER TABLE decisions ADD COLUMN contact_kind TEXT;
    ALTER TABLE decisions ADD COLUMN rule INTEGER REFERENCES decisions(id);
    CREATE INDEX decisions_by_undoes ON decisions(undoes) WHERE undoes IS NOT NULL;
    CREATE INDEX decisions_by_rule ON decisions(rule) WHERE rule IS NOT NULL;
    CREATE TABLE decision_moves (
        decision INTEGER PRIMARY KEY REFERENCES decisions(id) ON DELETE CASCADE,
        moves TEXT NOT NULL
    );
    INSERT INTO decision_moves (decision, moves)
        SELECT decision, json_group_array(json_array(email, json(before), json(after)))
        FROM (SELECT * FROM moves ORDER BY decision, email) GROUP BY decision;
    DROP TABLE moves
    """,
    # 3: the account the ledger records (one row: a ledger used against another
    # account refuses); whether a decision's plan was written (its writes may
    # have begun: a decision stopped after that stands in part, outcome
    # 'partial'). A plan was written for every decision with moves or a contact.
    """
    CREATE TABLE account (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        origin TEXT NOT NULL,
        username TEXT NOT NULL,
        account_id TEXT NOT NULL,
        bound REAL NOT NULL
    );
    ALTER TABLE decisions ADD COLUMN planned INTEGER NOT NULL DEFAULT 0;
    UPDATE decisions SET planned = 1
        WHERE contact_uid IS NOT NULL OR id IN (SELECT decision FROM decision_moves);
    CREATE INDEX decisions_open ON decisions(outcome) WHERE outcome IN ('pending', 'partial')
    """,
    # 4: a decision's emails grouped by where they were and where they went (a
    # JSON array of [before, after, [emails]]): a sender's mail mostly moves
    # together, so a pass encodes and writes less than half as much.
    """
    UPDATE decision_moves SET moves = (
        SELECT json_group_array(json_array(json(before), json(after), json(emails)))
        FROM (
            SELECT before, after, json_group_array(email) AS emails
            FROM (
                SELECT json_extract(value, '$[0]') AS email,
                       json_extract(value, '$[1]') AS before,
                       json_extract(value, '$[2]') AS after
                FROM json_each(decision_moves.moves) ORDER BY email
            )
            GROUP BY before, after ORDER BY before, after
        )
    )
    """,
)

VERSION = len(MIGRATIONS)


class SchemaTooNew(StorageError):
    """The file was written by a newer Mailroom: never downgraded."""


def version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file to :data:`VERSION`; returns the version it had."""
    found = version(conn)
    if found > VERSION:
        raise SchemaTooNew(f"schema version {found}, newer than this Mailroom's {VERSION}")
    if found == VERSION:
        return found
    with conn:  # one transaction: all the steps, or none
        conn.execute("BEGIN IMMEDIATE")
        # Read again under the write lock: another process opening the same new
        # file may have migrated it between the first read and the lock.
        found = version(conn)
        if found > VERSION:
            raise SchemaTooNew(f"schema version {found}, newer than this Mailroom's {VERSION}")
        for number in range(found, VERSION):
            for statement in _statements(MIGRATIONS[number]):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {VERSION}")
    return found


def _statements(script: str) -> list[str]:
    # executescript() would commit the open transaction first; split instead
    # (the migrations hold no semicolons inside literals).
    return [s.strip() for s in script.split(";") if s.strip()]
