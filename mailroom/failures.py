"""How the service sees a failure: the push supervisor's and /health's kind of
it (credentials refused, the ledger, another writer, a server, a bug), and a
pass's result as the supervisor counts it."""

from __future__ import annotations

import httpx

from mailroom.account.mailboxes import SetupError
from mailroom.carddav.errors import CardDavAuthError
from mailroom.contacts.book import ContactsError
from mailroom.core import redact
from mailroom.core.vocabulary import FailureKind
from mailroom.jmap.errors import JmapAuthError, JmapError
from mailroom.ledger.sqlite_file import LedgerError
from mailroom.push.messages import Failure
from mailroom.push.outcome import PassSummary
from mailroom.triage.records import PassResult
from mailroom.writer.lock import WriterBusy

REMOTE_ERRORS: tuple[type[BaseException], ...] = (JmapError, ContactsError, SetupError)


def auth_failure(exc: BaseException) -> str | None:
    """Who rejected the credentials, if that is what ``exc`` says."""
    if isinstance(exc, JmapAuthError):
        return f"JMAP (HTTP {exc.status})"
    if isinstance(exc, CardDavAuthError):
        return f"CardDAV (HTTP {exc.status})"
    return None


def classify(exc: BaseException) -> Failure:
    """The push supervisor's view of an exception from a pass or a discovery."""
    text = redact.scrub(f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc))
    rejected_by = auth_failure(exc)
    if rejected_by is not None:
        return Failure(FailureKind.AUTH, text, rejected_by)
    if isinstance(exc, LedgerError):
        return Failure(FailureKind.LEDGER, text)
    if isinstance(exc, WriterBusy):
        return Failure(FailureKind.BUSY, text)
    if isinstance(exc, (*REMOTE_ERRORS, httpx.HTTPError)):
        return Failure(FailureKind.REMOTE, text)
    return Failure(FailureKind.UNEXPECTED, f"unexpected {type(exc).__name__}: {text}")


def summarise(result: PassResult) -> PassSummary:
    """A pass in which senders were attempted and every one failed counts as failed."""
    failure = None
    if result.failures and not result.senders_triaged:
        error = result.last_error or "see the log"
        failure = Failure(FailureKind.REMOTE, f"every sender failed ({result.failures}): {error}")
    return PassSummary(
        seen_states=dict(result.seen_states),
        own_states={k: frozenset(v) for k, v in result.own_states.items()},
        triaged=dict(result.triaged),
        refiled=result.emails_refiled,
        conflicts=result.conflicts,
        failures=result.failures,
        unflagged=result.unflagged,
        missing=tuple(sorted(result.missing)),
        off=tuple(sorted(result.off)),
        senders=tuple(result.senders),
        failure=failure,
    )
