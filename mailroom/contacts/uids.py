"""Contact uids and group member keys, compared by meaning rather than spelling.

A group names its members by uid, but servers and clients spell the same uid
several ways. Cyrus (Fastmail's server) stores a JMAP member key exactly as
sent, so ``X`` and ``urn:uuid:X`` are two different keys there; its vCard 3.0
rendering prefixes every member with ``urn:uuid:``, quoting values that
already hold a colon (``urn:uuid:"urn:uuid:X"``); Apple-style clients write
``urn:uuid:X`` for a card whose UID is ``X``. All of these are one member.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

URN_UUID = "urn:uuid:"
_MAX_UNWRAP = 8  # a uid wrapped more often than this is not one anybody wrote


def new_uid() -> str:
    """The uid of a card Mailroom creates: a bare lower-case UUID, as Cyrus makes them.

    A ``urn:uuid:`` uid would reach vCard 3.0 readers (iPhone, macOS, CardDAV
    clients) as ``urn:uuid:"urn:uuid:…"``, which they cannot resolve.
    """
    return str(uuid.uuid4())


def canonical(key: str) -> str:
    """The uid a member key or card uid means: quotes and ``urn:uuid:`` prefixes removed."""
    text = key.strip()
    for _ in range(_MAX_UNWRAP):
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1].strip()
        elif text[: len(URN_UUID)].lower() == URN_UUID:
            text = text[len(URN_UUID) :].strip()
        else:
            break
    return text


def same(a: str, b: str) -> bool:
    return bool(canonical(a)) and canonical(a) == canonical(b)


def keys_for(members: Iterable[str], uid: str) -> list[str]:
    """Every key in ``members`` that names the card with ``uid`` (in their order)."""
    wanted = canonical(uid)
    if not wanted:
        return []
    return [key for key in members if canonical(key) == wanted]


def is_member(members: Iterable[str], uid: str) -> bool:
    return bool(keys_for(members, uid))
