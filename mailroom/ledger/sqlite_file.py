"""The ledger's SQLite file: opened, checked, migrated; moved aside when corrupt.

SQLite from the standard library in WAL mode (readers never block the
service's writes) with ``synchronous = FULL``: a decision's intent and plan
are on disk before the account is written, even across a power cut. The file
and its journals are the user's alone (0600), whoever's umask. A file that is
not a database, or fails SQLite's own check, is moved aside (never
overwritten) and a new one started; every other failure is a
:class:`LedgerError` naming the file and the fix.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from mailroom.errors import StorageError
from mailroom.ledger import schema

BUSY_TIMEOUT_S = 5.0  # another process (the CLI) holding the write lock


class LedgerError(StorageError):
    """The ledger cannot be used; the message names the file and what to do."""

    @property
    def passing(self) -> bool:
        """Likely to pass by itself (another process's lock, a full disk being
        cleared, an I/O hiccup): worth retrying rather than giving up."""
        text = str(self).lower()
        return any(word in text for word in PASSING)


# What the ledger's transient failures say (SQLite's and the OS's words).
PASSING = ("locked", "busy", "disk is full", "no space", "disk i/o error", "interrupted")


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
        _private(path)
        conn = _connect(path, busy_timeout)
    except OSError as exc:
        raise LedgerError(explain(path, exc)) from None
    except sqlite3.DatabaseError as exc:
        if not _is_corrupt(exc):
            raise LedgerError(explain(path, exc)) from None
        moved = _move_aside(path, now)
        try:
            _private(path)
            conn = _connect(path, busy_timeout)
        except (OSError, sqlite3.Error) as again:
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
        # FULL: each commit is synced, so an intent written before the account
        # is never lost to a power cut (NORMAL may drop the last commits).
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed: {check}")
    except BaseException:
        conn.close()
        raise
    return conn


def _private(path: Path) -> None:
    """Create the file 0600 (SQLite gives its -wal and -shm the file's mode),
    and take group and world rights off one a looser umask made."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)
        except (FileNotFoundError, PermissionError):
            pass  # not there yet, or not ours to change (read by another user)


def identity(path: Path) -> tuple[int, int] | None:
    """The file's (device, inode), None if it is gone: whether it is still the one opened."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


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
