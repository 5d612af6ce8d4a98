"""Which account a ledger records: bound on first use, and every other refused.

A ledger used against another account would make undo and reset "restore"
the wrong one; so the file names its account (origin, username, account id)
and a pass, a command or a dry run against another stops before writing
anything, naming both and the fix.

A mixin of :class:`~mailroom.ledger.store.Ledger`, which holds the file."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from mailroom.ledger.model import AccountKey
from mailroom.ledger.sqlite_file import LedgerError


class LedgerAccountError(LedgerError):
    """The ledger records another account: nothing is written to either."""


class AccountBinding:
    path: Path
    _clock: Callable[[], float]
    _key: AccountKey | None

    def account(self) -> AccountKey | None:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

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
