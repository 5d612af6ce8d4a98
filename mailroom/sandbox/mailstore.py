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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

ACCOUNT_ID = "u1"
MAX_CALLS = 16
MAX_GET = 500
MAX_SET = 500
MAX_QUERY_LIMIT = 1000
# A mailbox's myRights (RFC 8621 §2) when the account owns it outright.
RIGHTS = {
    "mayReadItems": True,
    "mayAddItems": True,
    "mayRemoveItems": True,
    "maySetSeen": True,
    "maySetKeywords": True,
    "mayCreateChild": True,
    "mayRename": True,
    "mayDelete": True,
    "maySubmit": True,
}

Args = dict[str, Any]


class MethodError(Exception):
    def __init__(
        self, type_: str, description: str | None = None, *, properties: list[str] | None = None
    ) -> None:
        super().__init__(type_)
        self.type = type_
        self.description = description
        self.properties = properties  # for an invalidProperties SetError


class RequestError(Exception):
    """A request-level problem (RFC 8620 §3.6.1), answered with HTTP 400."""

    def __init__(self, type_: str, detail: str) -> None:
        super().__init__(detail)
        self.type = type_
        self.detail = detail


@dataclass
class Mailbox:
    id: str
    name: str
    parent_id: str | None = None
    role: str | None = None


@dataclass
class Email:
    id: str
    thread_id: str
    mailbox_ids: set[str]
    from_: list[dict[str, str]]
    subject: str
    received_at: str
    keywords: dict[str, bool] = field(default_factory=dict)
    to: list[dict[str, str]] = field(default_factory=list)


class MailStore:
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
                    args = self._resolve_refs(args, responses)
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
                        result = _throttled(args)
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

    def _resolve_refs(self, args: Args, responses: list[list[Any]]) -> Args:
        out: Args = {}
        for key, value in args.items():
            if not key.startswith("#"):
                out[key] = value
                continue
            if key[1:] in args:
                raise MethodError("invalidArguments", f"both {key} and {key[1:]}")
            if not isinstance(value, dict):
                raise MethodError("invalidResultReference")
            for name, result, call_id in responses:
                if call_id == value.get("resultOf") and name == value.get("name"):
                    out[key[1:]] = _pointer(result, str(value.get("path", "")))
                    break
            else:
                raise MethodError("invalidResultReference", f"no result for {value!r}")
        return out

    # Mailbox ---------------------------------------------------------------

    def _mailbox_json(self, box: Mailbox) -> dict[str, Any]:
        total = sum(1 for e in self.emails.values() if box.id in e.mailbox_ids)
        return {
            "id": box.id,
            "name": box.name,
            "parentId": box.parent_id,
            "role": box.role,
            "sortOrder": 0,
            "totalEmails": total,
            "unreadEmails": 0,
            "isSubscribed": True,
            "myRights": {**RIGHTS, "mayAddItems": box.id not in self.no_insert},
        }

    def _mailbox_get(self, args: Args) -> Args:
        ids = args.get("ids")
        if ids is None:
            ids = list(self.mailboxes)
        found = [self._mailbox_json(self.mailboxes[i]) for i in ids if i in self.mailboxes]
        return {
            "accountId": ACCOUNT_ID,
            "state": str(self.mailbox_state),
            "list": found,
            "notFound": [i for i in ids if i not in self.mailboxes],
        }

    def _mailbox_set(self, args: Args) -> Args:
        objects = sum(len(args.get(k) or ()) for k in ("create", "update", "destroy"))
        if objects > self.max_set:
            raise MethodError("requestTooLarge", f"maxObjectsInSet is {self.max_set}")
        old = str(self.mailbox_state)
        created: dict[str, Any] = {}
        not_created: dict[str, Any] = {}
        for key, props in (args.get("create") or {}).items():
            name = props.get("name") if isinstance(props, dict) else None
            parent = props.get("parentId") if isinstance(props, dict) else None
            if not isinstance(name, str) or not name:
                not_created[key] = {"type": "invalidProperties", "properties": ["name"]}
            elif parent is not None and parent not in self.mailboxes:
                not_created[key] = {"type": "invalidProperties", "properties": ["parentId"]}
            elif any(b.name == name and b.parent_id == parent for b in self.mailboxes.values()):
                not_created[key] = {
                    "type": "invalidProperties",
                    "properties": ["name"],
                    "description": "a mailbox with this name exists",
                }
            else:
                box = self._add_mailbox(name, parent, None)
                created[key] = {"id": box.id}
        if created:
            self._bump(mailboxes=True)
        return {
            "accountId": ACCOUNT_ID,
            "oldState": old,
            "newState": str(self.mailbox_state),
            "created": created or None,
            "notCreated": not_created or None,
        }

    # Email -----------------------------------------------------------------

    def _matches(self, email: Email, cond: Any) -> bool:
        if not isinstance(cond, dict):
            raise MethodError("unsupportedFilter", "filter must be an object")
        if "operator" in cond:
            subs = [self._matches(email, c) for c in cond.get("conditions") or []]
            op = cond["operator"]
            if op == "AND":
                return all(subs)
            if op == "OR":
                return any(subs)
            if op == "NOT":
                return not any(subs)
            raise MethodError("unsupportedFilter", f"operator {op}")
        for key, value in cond.items():
            if key == "inMailbox":
                if value not in email.mailbox_ids:
                    return False
            elif key == "inMailboxOtherThan":
                if not email.mailbox_ids - set(value):
                    return False
            elif key == "from":
                # A text match, like Fastmail's: "bob@x.com" also matches
                # "jimbob@x.com", so clients must confirm the address.
                needle = str(value).lower()
                if not any(
                    needle in a.get("email", "").lower() or needle in a.get("name", "").lower()
                    for a in email.from_
                ):
                    return False
            else:
                raise MethodError("unsupportedFilter", f"filter property {key}")
        return True

    def _email_query(self, args: Args) -> Args:
        filter_ = args.get("filter")
        matched = [e for e in self.emails.values() if filter_ is None or self._matches(e, filter_)]
        ascending = True
        for sort in args.get("sort") or []:
            if sort.get("property") != "receivedAt":
                raise MethodError("unsupportedSort", str(sort.get("property")))
            ascending = bool(sort.get("isAscending", True))
        matched.sort(key=lambda e: (e.received_at, int(e.id[1:])), reverse=not ascending)
        position = int(args.get("position") or 0)
        if position < 0:
            raise MethodError("invalidArguments", "negative position is not supported")
        asked = args.get("limit")
        limit = self.query_limit if asked is None else min(int(asked), self.query_limit)
        page = matched[position : position + limit]
        result: Args = {
            "accountId": ACCOUNT_ID,
            "queryState": str(self.email_state),
            "canCalculateChanges": False,
            "position": position,
            "ids": [e.id for e in page],
        }
        if asked is None or limit != asked:
            result["limit"] = limit
        if args.get("calculateTotal"):
            result["total"] = len(matched)
        return result

    def _email_json(self, email: Email, properties: list[str] | None) -> dict[str, Any]:
        full = {
            "id": email.id,
            "threadId": email.thread_id,
            "mailboxIds": dict.fromkeys(sorted(email.mailbox_ids), True),
            "keywords": dict(email.keywords),
            "from": [dict(a) for a in email.from_],
            "to": [dict(a) for a in email.to],
            "subject": email.subject,
            "receivedAt": email.received_at,
        }
        if properties is None:
            return full
        return {"id": email.id, **{p: full[p] for p in properties if p in full}}

    def _email_get(self, args: Args) -> Args:
        ids = args.get("ids")
        if ids is None:
            ids = list(self.emails)
        if len(ids) > self.max_get:
            raise MethodError("requestTooLarge", f"maxObjectsInGet is {self.max_get}")
        props = args.get("properties")
        return {
            "accountId": ACCOUNT_ID,
            "state": str(self.email_state),
            "list": [self._email_json(self.emails[i], props) for i in ids if i in self.emails],
            "notFound": [i for i in ids if i not in self.emails],
        }

    def _email_set(self, args: Args) -> Args:
        if_in_state = args.get("ifInState")
        if if_in_state is not None and if_in_state != str(self.email_state):
            raise MethodError("stateMismatch")
        create = args.get("create") or {}
        update = args.get("update") or {}
        destroy = args.get("destroy") or []
        if len(create) + len(update) + len(destroy) > self.max_set:
            raise MethodError("requestTooLarge", f"maxObjectsInSet is {self.max_set}")
        old = str(self.email_state)
        changes: list[tuple[str, str]] = []
        created: dict[str, Any] = {}
        not_created: dict[str, Any] = {}
        for key, props in create.items():
            try:
                email = self._create_email(props)
            except MethodError as exc:
                not_created[key] = {"type": exc.type, "description": exc.description}
                continue
            created[key] = {"id": email.id, "threadId": email.thread_id}
            changes.append((email.id, "created"))
        updated: dict[str, Any] = {}
        not_updated: dict[str, Any] = {}
        for eid, patch in update.items():
            target = self.emails.get(eid)
            if target is None:
                not_updated[eid] = {"type": "notFound"}
                continue
            if eid in self.refuse_updates:
                not_updated[eid] = {"type": "forbidden", "description": "refused (fault)"}
                continue
            blocked = self._blocked(target, patch)
            if blocked and "forbidden" in blocked.values():
                not_updated[eid] = {"type": "forbidden", "description": "no insert right"}
                continue
            if blocked:  # Cyrus 3.6: says "updated", files nothing, removes the rest
                boxes = (set(target.mailbox_ids) | _added(patch)) - _removed(patch) - set(blocked)
                if not boxes:
                    del self.emails[eid]
                    changes.append((eid, "destroyed"))
                elif boxes != target.mailbox_ids:
                    target.mailbox_ids = boxes
                    changes.append((eid, "updated"))
                updated[eid] = None
                continue
            try:
                boxes, keywords = self._apply_patch(target, patch)
            except MethodError as exc:
                not_updated[eid] = {"type": exc.type, "description": exc.description}
                continue
            if boxes != target.mailbox_ids or keywords != target.keywords:
                target.mailbox_ids, target.keywords = boxes, keywords
                changes.append((eid, "updated"))
            updated[eid] = None
        destroyed: list[str] = []
        not_destroyed: dict[str, Any] = {}
        for eid in destroy:
            if self.emails.pop(eid, None) is None:
                not_destroyed[eid] = {"type": "notFound"}
            else:
                destroyed.append(eid)
                changes.append((eid, "destroyed"))
        self._bump(changes)
        return {
            "accountId": ACCOUNT_ID,
            "oldState": old,
            "newState": str(self.email_state),
            "created": created or None,
            "notCreated": not_created or None,
            "updated": updated or None,
            "notUpdated": not_updated or None,
            "destroyed": destroyed or None,
            "notDestroyed": not_destroyed or None,
        }

    def _create_email(self, props: Any) -> Email:
        if not isinstance(props, dict):
            raise MethodError("invalidProperties", "not an object")
        boxes = props.get("mailboxIds")
        if not isinstance(boxes, dict) or not boxes:
            raise MethodError("invalidProperties", "mailboxIds is required")
        if any(b not in self.mailboxes for b in boxes):
            raise MethodError("invalidProperties", "unknown mailbox")
        sender = props.get("from")
        if not isinstance(sender, list):
            raise MethodError("invalidProperties", "from is required")
        self._clock += timedelta(seconds=1)
        email = Email(
            id=self._new_id("e"),
            thread_id=self._new_id("t"),
            mailbox_ids=set(boxes),
            from_=[dict(a) for a in sender],
            subject=str(props.get("subject", "")),
            received_at=str(props.get("receivedAt") or self._clock.strftime("%Y-%m-%dT%H:%M:%SZ")),
            keywords=dict(props.get("keywords") or {}),
        )
        self.emails[email.id] = email
        return email

    def _blocked(self, email: Email, patch: Any) -> dict[str, str]:
        """The mailboxes ``patch`` adds that the account may not file into."""
        if not isinstance(patch, dict) or not self.no_insert:
            return {}
        added = _added(patch) - email.mailbox_ids
        return {m: self.no_insert[m] for m in added if m in self.no_insert}

    def _apply_patch(self, email: Email, patch: Any) -> tuple[set[str], dict[str, bool]]:
        if not isinstance(patch, dict):
            raise MethodError("invalidPatch", "not an object")
        boxes = set(email.mailbox_ids)
        keywords = dict(email.keywords)
        for path, value in patch.items():
            if path == "mailboxIds":
                if not isinstance(value, dict):
                    raise MethodError("invalidProperties", "mailboxIds")
                boxes = set(value)
            elif path.startswith("mailboxIds/"):
                mid = path.split("/", 1)[1]
                if value is True:
                    boxes.add(mid)
                elif value is None:
                    boxes.discard(mid)
                else:
                    raise MethodError("invalidPatch", path)
            elif path == "keywords":
                keywords = dict(value or {})
            elif path.startswith("keywords/"):
                kw = path.split("/", 1)[1]
                if value is True:
                    keywords[kw] = True
                elif value is None:
                    keywords.pop(kw, None)
                else:
                    raise MethodError("invalidPatch", path)
            else:
                raise MethodError("invalidProperties", f"cannot update {path}")
        unknown = boxes - set(self.mailboxes)
        if unknown:
            raise MethodError("invalidProperties", f"unknown mailbox {sorted(unknown)[0]}")
        if not boxes:
            # What Fastmail answers when an update would leave no mailbox.
            self.would_empty += 1
            raise MethodError("invalidProperties", "unknown error")
        return boxes, keywords

    def _email_changes(self, args: Args) -> Args:
        since = args.get("sinceState")
        if not isinstance(since, str) or not since.isdigit() or int(since) > self.email_state:
            raise MethodError("cannotCalculateChanges")
        start = int(since)
        kinds: dict[str, str] = {}
        for state, eid, kind in self._email_log:
            if state <= start:
                continue
            if kind == "created" or kinds.get(eid) == "created":
                kinds[eid] = "destroyed-new" if kind == "destroyed" else "created"
            else:
                kinds[eid] = kind
        return {
            "accountId": ACCOUNT_ID,
            "oldState": since,
            "newState": str(self.email_state),
            "hasMoreChanges": False,
            "created": [i for i, k in kinds.items() if k == "created"],
            "updated": [i for i, k in kinds.items() if k == "updated"],
            "destroyed": [i for i, k in kinds.items() if k == "destroyed"],
        }


def _added(patch: dict[str, Any]) -> set[str]:
    whole = patch.get("mailboxIds")
    out = set(whole) if isinstance(whole, dict) else set()
    return out | {k.split("/", 1)[1] for k, v in patch.items() if k.startswith("mailboxIds/") and v}


def _removed(patch: dict[str, Any]) -> set[str]:
    return {
        k.split("/", 1)[1] for k, v in patch.items() if k.startswith("mailboxIds/") and v is None
    }


def _pointer(value: Any, path: str) -> Any:
    """Evaluate a JSON pointer with the JMAP ``*`` extension (RFC 8620 §3.7)."""
    if path in ("", "/"):
        return value
    parts = path.lstrip("/").split("/", 1)
    head = parts[0].replace("~1", "/").replace("~0", "~")
    rest = "/" + parts[1] if len(parts) > 1 else ""
    if head == "*" and isinstance(value, list):
        out: list[Any] = []
        for item in value:
            got = _pointer(item, rest)
            out.extend(got if isinstance(got, list) else [got])
        return out
    if isinstance(value, dict) and head in value:
        return _pointer(value[head], rest)
    if isinstance(value, list) and head.isdigit() and int(head) < len(value):
        return _pointer(value[int(head)], rest)
    raise MethodError("invalidResultReference", f"path {path} not found")


def _throttled(args: Args) -> Args:
    """A /set answer refusing every record with ``rateLimit``; nothing was applied."""
    limit = {"type": "rateLimit", "description": "too many changes, try again shortly"}
    return {
        "accountId": ACCOUNT_ID,
        "oldState": None,
        "newState": None,
        "created": None,
        "updated": None,
        "destroyed": None,
        "notCreated": {k: limit for k in args.get("create") or {}} or None,
        "notUpdated": {k: limit for k in args.get("update") or {}} or None,
        "notDestroyed": {k: limit for k in args.get("destroy") or []} or None,
    }
