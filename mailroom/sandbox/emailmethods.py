"""The stand-in's Email methods: query (the filters Mailroom sends, a text-match
``from``), get, set (the "at least one mailbox" rule, the insert right, Cyrus
3.6's silent drop) and changes.

A mixin of :class:`~mailroom.sandbox.mailstore.MailStore`, which holds the
account's emails and mailboxes, takes the lock and dispatches the methods."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from mailroom.sandbox.emailfilter import check, matches
from mailroom.sandbox.mailmodel import ACCOUNT_ID, Args, Email, Mailbox, MethodError, set_answer


class EmailMethods:
    """Email/query, Email/get, Email/set and Email/changes over the account."""

    emails: dict[str, Email]
    mailboxes: dict[str, Mailbox]
    email_state: int
    max_get: int
    max_set: int
    query_limit: int
    no_insert: dict[str, Literal["forbidden", "cyrus-3.6"]]
    refuse_updates: set[str]
    would_empty: int
    _email_log: list[tuple[int, str, str]]
    _clock: datetime

    def _bump(self, email_ids: Any = (), mailboxes: bool = False) -> None:
        raise NotImplementedError

    def _new_id(self, prefix: str) -> str:
        raise NotImplementedError

    def _email_query(self, args: Args) -> Args:
        filter_ = args.get("filter")
        if filter_ is not None:
            check(filter_)
        matched = [e for e in self.emails.values() if filter_ is None or matches(e, filter_)]
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
            "cc": [dict(a) for a in email.cc],
            "bcc": [dict(a) for a in email.bcc],
            "subject": email.subject,
            "receivedAt": email.received_at,
            "preview": email.preview,
        }
        if properties is None:
            return full
        out: dict[str, Any] = {"id": email.id}
        for p in properties:
            if p in full:
                out[p] = full[p]
            elif p.startswith("header:"):
                out[p] = header_value(email, p)
        return out

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
            refused = self._update_email(eid, patch, changes)
            if refused is None:
                updated[eid] = None
            else:
                not_updated[eid] = refused
        destroyed: list[str] = []
        not_destroyed: dict[str, Any] = {}
        for eid in destroy:
            if self.emails.pop(eid, None) is None:
                not_destroyed[eid] = {"type": "notFound"}
            else:
                destroyed.append(eid)
                changes.append((eid, "destroyed"))
        self._bump(changes)
        return set_answer(
            old,
            str(self.email_state),
            created=created,
            notCreated=not_created,
            updated=updated,
            notUpdated=not_updated,
            destroyed=destroyed,
            notDestroyed=not_destroyed,
        )

    def _update_email(
        self, eid: str, patch: Any, changes: list[tuple[str, str]]
    ) -> dict[str, Any] | None:
        """One email's patch applied (None) or refused (the SetError)."""
        target = self.emails.get(eid)
        if target is None:
            return {"type": "notFound"}
        if eid in self.refuse_updates:
            return {"type": "forbidden", "description": "refused (fault)"}
        blocked = self._blocked(target, patch)
        if blocked and "forbidden" in blocked.values():
            return {"type": "forbidden", "description": "no insert right"}
        if blocked:  # Cyrus 3.6: says "updated", files nothing, removes the rest
            boxes = (set(target.mailbox_ids) | _added(patch)) - _removed(patch) - set(blocked)
            if not boxes:
                del self.emails[eid]
                changes.append((eid, "destroyed"))
            elif boxes != target.mailbox_ids:
                target.mailbox_ids = boxes
                changes.append((eid, "updated"))
            return None
        try:
            boxes, keywords = self._apply_patch(target, patch)
        except MethodError as exc:
            return {"type": exc.type, "description": exc.description}
        if boxes != target.mailbox_ids or keywords != target.keywords:
            target.mailbox_ids, target.keywords = boxes, keywords
            changes.append((eid, "updated"))
        return None

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


def header_value(email: Email, prop: str) -> str | None:
    """``header:{name}`` (raw) or ``header:{name}:asText`` (RFC 8621 §4.1.3): the
    last field of that name, or None; other forms and ``:all`` are refused."""
    parts = prop.split(":")
    if len(parts) not in (2, 3) or not parts[1] or (len(parts) == 3 and parts[2] != "asText"):
        raise MethodError("invalidArguments", f"unsupported header property {prop[:100]}")
    name = parts[1].lower()
    found = [v for k, v in email.headers if k.lower() == name]
    if not found:
        return None
    raw = found[-1]
    return " ".join(raw.split()) if len(parts) == 3 else raw
