"""An in-memory JMAP mail account that behaves like Fastmail where it matters.

It implements the methods Mailroom and its tests use (Mailbox/get/set,
Email/query/get/set/changes), result references, the session limits, the
"at least one mailbox" rule (refused as Fastmail does, with "unknown error"),
``total`` only with ``calculateTotal``, and a text-match ``from`` filter.
Every change bumps a state and wakes the EventSource streams.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from mailroom.sandbox.calls import resolve_refs, throttled
from mailroom.sandbox.emailmethods import EmailMethods
from mailroom.sandbox.mailboxmethods import MailboxMethods
from mailroom.sandbox.mailmodel import (
    ACCOUNT_ID,
    MAX_CALLS,
    MAX_GET,
    MAX_QUERY_LIMIT,
    MAX_SET,
    Args,
    Email,
    Mailbox,
    MethodError,
    RequestError,
)


class MailStore(MailboxMethods, EmailMethods):
    """One account. Callers need no lock: every public method takes it."""

    def __init__(
        self,
        *,
        max_calls: int = MAX_CALLS,
        max_get: int = MAX_GET,
        max_set: int = MAX_SET,
        query_limit: int = MAX_QUERY_LIMIT,
    ) -> None:
        self.max_calls = max_calls
        # The most ids one Email/query returns; a smaller asked limit is kept,
        # a larger one is clamped and the answer says so (RFC 8620 §5.5).
        self.query_limit = query_limit
        # Emails whose every update is refused (a per-email fault).
        self.refuse_updates: set[str] = set()
        # Mailboxes the account may not file mail into (an ACL without the
        # insert right), and how the server answers an update adding one:
        # "forbidden" as Cyrus 3.13 does (nothing changes), or "cyrus-3.6" as
        # Debian's Cyrus 3.6 does: "updated", the add silently dropped, any
        # removal in the same patch carried out, and an email left in no
        # mailbox gone for good.
        self.no_insert: dict[str, Literal["forbidden", "cyrus-3.6"]] = {}
        self.would_empty = 0  # updates refused because they left no mailbox
        self.max_get = max_get
        self.max_set = max_set
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._ids = itertools.count(1)
        self.mailboxes: dict[str, Mailbox] = {}
        self.emails: dict[str, Email] = {}
        self.email_state = 0
        self.mailbox_state = 0
        # (state, email id, kind) since the beginning; small enough for a sandbox.
        self._email_log: list[tuple[int, str, str]] = []
        self._clock = datetime(2026, 1, 1, tzinfo=UTC)
        # Methods of other data types served on the same API (JMAP Contacts),
        # and the capabilities they need in "using".
        # method name -> (the capability it needs in "using", handler)
        self.extensions: dict[str, tuple[str, Callable[[Args], Args]]] = {}
        self.extra_capabilities: set[str] = set()
        # Hooks for fault injection: called with the method name before it
        # runs; and with its answer, which it may replace (an absurd server).
        self.before_method: Callable[[str, Args], None] | None = None
        self.after_method: Callable[[str, Args, Args], Args] | None = None
        # method -> calls whose records are all refused with a per-record
        # rateLimit and not applied, as Fastmail throttles writes.
        self.throttle: dict[str, int] = {}
        for name, role in (
            ("Inbox", "inbox"),
            ("Archive", "archive"),
            ("Sent", "sent"),
            ("Drafts", "drafts"),
            ("Trash", "trash"),
            ("Spam", "junk"),
        ):
            self._add_mailbox(name, None, role)

    # -- state --------------------------------------------------------------

    def states(self) -> dict[str, str]:
        with self.lock:
            return {"Email": str(self.email_state), "Mailbox": str(self.mailbox_state)}

    def _bump(self, email_ids: Iterable[tuple[str, str]] = (), mailboxes: bool = False) -> None:
        changes = list(email_ids)
        if changes:
            self.email_state += 1
            self._email_log.extend((self.email_state, eid, kind) for eid, kind in changes)
            # Counts (totalEmails) live on mailboxes, so their state moves too,
            # as on Fastmail and Cyrus.
            mailboxes = True
        if mailboxes:
            self.mailbox_state += 1
        if changes or mailboxes:
            self.changed.notify_all()

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    # -- direct helpers for tests and the demo -----------------------------

    def _add_mailbox(self, name: str, parent_id: str | None, role: str | None) -> Mailbox:
        box = Mailbox(self._new_id("mb"), name, parent_id, role)
        self.mailboxes[box.id] = box
        return box

    def ensure_mailbox(self, name: str) -> str:
        with self.lock:
            for box in self.mailboxes.values():
                if box.name == name and box.parent_id is None:
                    return box.id
            box = self._add_mailbox(name, None, None)
            self._bump(mailboxes=True)
            return box.id

    def mailbox_id(self, name: str) -> str:
        with self.lock:
            for box in self.mailboxes.values():
                if box.name == name:
                    return box.id
        raise KeyError(name)

    def deliver(
        self,
        sender: str,
        *,
        name: str = "",
        subject: str = "",
        mailboxes: Iterable[str] = ("Screener",),
        preview: str = "",
        to: Iterable[str] = (),
        cc: Iterable[str] = (),
        bcc: Iterable[str] = (),
        headers: Iterable[tuple[str, str]] = (),
    ) -> str:
        """Add one message from ``sender`` to the named mailboxes (created if missing)."""
        with self.lock:
            ids = {
                self.ensure_mailbox(m) if m != "Inbox" else self.mailbox_id(m) for m in mailboxes
            }
            self._clock += timedelta(seconds=1)
            email = Email(
                id=self._new_id("e"),
                thread_id=self._new_id("t"),
                mailbox_ids=ids,
                from_=[{"name": name, "email": sender}],
                subject=subject or f"Message from {sender}",
                received_at=self._clock.strftime("%Y-%m-%dT%H:%M:%SZ"),
                preview=preview[:256],
                to=[{"name": "", "email": a} for a in to],
                cc=[{"name": "", "email": a} for a in cc],
                bcc=[{"name": "", "email": a} for a in bcc],
                headers=list(headers),
            )
            self.emails[email.id] = email
            self._bump([(email.id, "created")])
            return email.id

    def mailbox_names(self, email_id: str) -> set[str]:
        with self.lock:
            return {self.mailboxes[m].name for m in self.emails[email_id].mailbox_ids}

    def emails_in(self, mailbox: str) -> list[str]:
        with self.lock:
            mid = self.mailbox_id(mailbox)
            return [e.id for e in self.emails.values() if mid in e.mailbox_ids]

    def set_mailboxes(self, email_id: str, names: Iterable[str]) -> None:
        """Replace an email's mailboxes by name, as a user moving mail would."""
        with self.lock:
            email = self.emails[email_id]
            email.mailbox_ids = {self.ensure_mailbox(n) for n in names}
            self._bump([(email_id, "updated")])

    # -- the JMAP API -------------------------------------------------------

    def handle(self, request: Any) -> dict[str, Any]:
        """Process a JMAP request object; raise RequestError for request-level faults."""
        if not isinstance(request, dict):
            raise RequestError("urn:ietf:params:jmap:error:notRequest", "not a JSON object")
        using = request.get("using")
        calls = request.get("methodCalls")
        if not isinstance(using, list) or not isinstance(calls, list):
            raise RequestError(
                "urn:ietf:params:jmap:error:notRequest", "using and methodCalls are required"
            )
        known = {"urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"}
        for cap in using:
            if cap not in known | self.extra_capabilities:
                raise RequestError(
                    "urn:ietf:params:jmap:error:unknownCapability", f"unknown capability {cap}"
                )
        if len(calls) > self.max_calls:
            raise RequestError(
                "urn:ietf:params:jmap:error:limit", f"maxCallsInRequest is {self.max_calls}"
            )
        responses: list[list[Any]] = []
        with self.lock:
            for call in calls:
                if not (isinstance(call, list) and len(call) == 3 and isinstance(call[1], dict)):
                    raise RequestError(
                        "urn:ietf:params:jmap:error:notRequest", "malformed method call"
                    )
                name, args, call_id = call
                try:
                    args = resolve_refs(args, responses)
                    if args.get("accountId") != ACCOUNT_ID:
                        raise MethodError("accountNotFound")
                    handler = self._methods().get(name)
                    if handler is None and name in self.extensions:
                        capability, extension = self.extensions[name]
                        handler = extension if capability in using else None
                    if handler is None:
                        raise MethodError("unknownMethod", name)
                    if self.before_method is not None:
                        self.before_method(name, args)
                    if self.throttle.get(name, 0) > 0 and name.endswith("/set"):
                        self.throttle[name] -= 1
                        result = throttled(args)
                    else:
                        result = handler(args)
                    if self.after_method is not None:
                        result = self.after_method(name, args, result)
                    responses.append([name, result, call_id])
                except MethodError as exc:
                    err: dict[str, Any] = {"type": exc.type}
                    if exc.description:
                        err["description"] = exc.description
                    responses.append(["error", err, call_id])
        return {"methodResponses": responses, "sessionState": "0"}

    def _methods(self) -> dict[str, Callable[[Args], Args]]:
        return {
            "Core/echo": lambda args: args,
            "Mailbox/get": self._mailbox_get,
            "Mailbox/set": self._mailbox_set,
            "Email/query": self._email_query,
            "Email/get": self._email_get,
            "Email/set": self._email_set,
            "Email/changes": self._email_changes,
        }

    # Email -----------------------------------------------------------------
