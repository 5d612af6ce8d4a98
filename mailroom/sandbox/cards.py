"""The stand-in's own reading and writing of vCards and WebDAV names.

A stand-in that parsed cards with the client's code would hide a bug in that
code (both sides would agree on the wrong reading), so the server side reads
cards here, on the vCard library directly, the way Cyrus does: property names
case-insensitive, addresses compared case-insensitively, group members named
``urn:uuid:<uid>`` (and, after a JMAP write of a key holding a colon, Cyrus's
quoted ``urn:uuid:"<key>"``).
"""

from __future__ import annotations

from typing import Any

import vobject

DAV = "DAV:"
CARD = "urn:ietf:params:xml:ns:carddav"
KIND = "x-addressbookserver-kind"
MEMBER = "x-addressbookserver-member"
URN = "urn:uuid:"


class CardError(Exception):
    """A card the server cannot store: not a vCard, or without what it needs."""


def tag(namespace: str, name: str) -> str:
    """An ElementTree name: ``{namespace}name``."""
    return "{" + namespace + "}" + name


def parse(text: str, where: str = "vCard") -> Any:
    try:
        card = vobject.readOne(text)
    except Exception as exc:  # the library raises many kinds; a server answers 400 to all
        raise CardError(f"{where}: not a vCard ({type(exc).__name__})") from None
    if str(card.name).lower() != "vcard":
        raise CardError(f"{where}: a {card.name}, not a VCARD")
    return card


def _texts(card: Any, prop: str) -> list[str]:
    return [str(line.value).strip() for line in card.contents.get(prop, []) if line.value]


def _one(card: Any, prop: str) -> str:
    texts = _texts(card, prop)
    return texts[0] if texts else ""


def _unwrap(value: str) -> str:
    """A member value or UID as the uid it names."""
    text = value.strip()
    if text.lower().startswith(URN):
        text = text[len(URN) :]
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        text = text[1:-1]
        if text.lower().startswith(URN):
            text = text[len(URN) :]
    return text


def uid(card: Any) -> str:
    value = _unwrap(_one(card, "uid"))
    if not value:
        raise CardError("the card has no UID")
    return value


def emails(card: Any) -> set[str]:
    return {text.lower() for text in _texts(card, "email")}


def is_group(card: Any) -> bool:
    return _one(card, KIND).lower() == "group"


def display_name(card: Any) -> str:
    return _one(card, "fn")


def members(card: Any) -> set[str]:
    return {m for m in (_unwrap(t) for t in _texts(card, MEMBER)) if m}


def new_group(group_uid: str, name: str) -> str:
    """A vCard 3.0 group card, as the server's own group-making writes it."""
    lines = [
        "BEGIN:VCARD",
        "VERSION:3.0",
        f"UID:{group_uid}",
        f"FN:{name}",
        f"N:{name};;;;",
        "X-ADDRESSBOOKSERVER-KIND:group",
        "END:VCARD",
    ]
    return "\r\n".join(lines) + "\r\n"
