"""The ledger's SQLite file: opened, checked, migrated; moved aside when corrupt.

SQLite from the standard library in WAL mode (readers never block the
service's writes). A file that is not a database, or fails SQLite's own
check, is moved aside (never overwritten) and a new one started; every other
failure is a :class:`LedgerError` naming the file and the fix.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from mailroom.ledger import schema

BUSY_TIMEOUT_S = 5.0  # another process (the CLI) holding the write lock


class LedgerError(Exception):
    """The ledger cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class Opened:
    """How opening went: ``moved_aside`` is where a corrupt file went."""

    migrated_from: int
    moved_aside: Path | None = None


def open_file(path: Path, now: float, busy_timeout: float) -> tuple[sqlite3.Connection, Opened]:
    moved: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise LedgerError(explain(path, exc)) from None
    try:
        conn = _connect(path, busy_timeout)
    except sqlite3.DatabaseError as exc:
        if not _is_corrupt(exc):
            raise LedgerError(explain(path, exc)) from None
        moved = _move_aside(path, now)
        try:
            conn = _connect(path, busy_timeout)
        except sqlite3.Error as again:
            raise LedgerError(explain(path, again)) from None
    try:
        found = schema.migrate(conn)
    except schema.SchemaTooNew as exc:
        conn.close()
        raise LedgerError(
            f"ledger {path}: {exc}; use that Mailroom, or set MAILROOM_STATE_DIR to a new directory"
        ) from None
    except sqlite3.Error as exc:
        conn.close()
        raise LedgerError(explain(path, exc)) from None
    return conn, Opened(found, moved)


def _connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at each checkpoint
        conn.execute("PRAGMA foreign_keys = ON")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed: {check}")
    except BaseException:
        conn.close()
        raise
    return conn


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc)
    return "not a database" in text or "malformed" in text


def _move_aside(path: Path, now: float) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    try:
        path.rename(target)
        for suffix in ("-wal", "-shm"):  # the journal belongs to the file it journals
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.rename(target.with_name(target.name + suffix))
    except OSError as exc:
        raise LedgerError(
            f"ledger {path} is corrupt and could not be moved aside ({exc.strerror}); "
            "move it away by hand"
        ) from None
    return target


def explain(path: Path, exc: BaseException) -> str:
    text = str(exc) if not isinstance(exc, OSError) else (exc.strerror or str(exc))
    lower = text.lower()
    if "readonly" in lower or "read-only" in lower or "permission denied" in lower:
        fix = "make it and its directory writable by the service's user"
    elif "disk is full" in lower or "no space" in lower:
        fix = "free space on its disk"
    elif "locked" in lower or "busy" in lower:
        fix = "another process holds it: stop the other Mailroom using it"
    elif "unable to open" in lower:
        fix = "check that its directory exists and is writable (MAILROOM_STATE_DIR)"
    else:
        fix = "see the error; MAILROOM_STATE_DIR sets where it lives"
    return f"ledger {path}: {text}; {fix}"
