"""The stand-in's mail account as data: its limits, a mailbox, an email, and
the errors a method or a request answers with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    cc: list[dict[str, str]] = field(default_factory=list)
    bcc: list[dict[str, str]] = field(default_factory=list)  # on the sender's own copy only
    preview: str = ""  # the start of the body's text (RFC 8621 §4.1.4: at most 256 characters)
    headers: list[tuple[str, str]] = field(default_factory=list)  # other header fields, raw


def set_answer(old: str, new: str, **outcomes: Any) -> Args:
    """A ``/set`` answer (RFC 8620 §5.3): each of created, notCreated, updated,
    notUpdated, destroyed, notDestroyed given, or null when empty."""
    keys = ("created", "notCreated", "updated", "notUpdated", "destroyed", "notDestroyed")
    return {
        "accountId": ACCOUNT_ID,
        "oldState": old,
        "newState": new,
        **{key: outcomes.get(key) or None for key in keys},
    }
