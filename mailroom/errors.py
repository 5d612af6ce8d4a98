"""Every error Mailroom raises on purpose, as one tree.

Each says what is wrong and the fix, in words for a person, and never holds a
secret. Commands catch :class:`MailroomError` (one line on standard error,
exit 1); the service classifies by branch (a server's answer, the ledger, the
account, another writer) for ``/health`` and its retries. Anything else is a
bug, logged with its traceback and counted.
"""

from __future__ import annotations


class MailroomError(Exception):
    """The root: an error Mailroom names and explains."""


class ConfigError(MailroomError, ValueError):
    """The settings (or the categories, or a unit's command) are not usable as given."""


class ServerError(MailroomError):
    """A server (JMAP, CardDAV) failed, refused, or answered what cannot be used."""


class AccountError(MailroomError):
    """The account is not as Mailroom needs it (no Screener, a conflicting setup)."""


class StorageError(MailroomError):
    """The ledger or the state directory cannot be read or written."""


class BusyError(MailroomError):
    """Another process writes the account and kept it past the wait allowed."""
