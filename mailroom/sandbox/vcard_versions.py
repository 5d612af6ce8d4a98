"""vCard 3.0 and 4.0 as Cyrus (Fastmail's server) converts between them.

Cards written over CardDAV are kept as written; cards written over JMAP are
kept as vCard 4.0 with ``MEMBER`` values exactly as the JMAP member keys
were sent. A CardDAV reader gets vCard 3.0 unless it asks for 4.0, and the
3.0 rendering prefixes every member with ``urn:uuid:`` whatever it already
holds, quoting a value with a colon: a member key ``urn:uuid:X`` reaches an
iPhone as ``urn:uuid:"urn:uuid:X"``. The other way, one ``urn:uuid:`` is
taken off an ``X-ADDRESSBOOKSERVER-MEMBER``.
"""

from __future__ import annotations

from typing import Any

import vobject

from mailroom.sandbox import cards as vcard

URN = "urn:uuid:"
KIND4 = "kind"
MEMBER4 = "member"


def version(card: Any) -> str:
    lines = card.contents.get("version", [])
    return str(lines[0].value).strip() if lines else "3.0"


def member_keys(card: Any) -> list[str]:
    """The group's members as JMAP shows them (4.0 values; 3.0 values less one prefix)."""
    if version(card) == "4.0":
        return [str(line.value).strip() for line in card.contents.get(MEMBER4, [])]
    return [
        str(line.value).strip().removeprefix(URN) for line in card.contents.get(vcard.MEMBER, [])
    ]


def kind(card: Any) -> str:
    """``group``, ``org`` or ``individual``."""
    if version(card) == "4.0":
        lines = card.contents.get(KIND4, [])
        value = str(lines[0].value).strip().lower() if lines else ""
        return value if value in ("group", "org") else "individual"
    if vcard.is_group(card):
        return "group"
    show = card.contents.get("x-abshowas", [])
    return "org" if show and str(show[0].value).strip().upper() == "COMPANY" else "individual"


def to_v4(card: Any) -> Any:
    """The card as vCard 4.0 (in place); every line it does not convert is kept."""
    if version(card) == "4.0":
        return card
    group_kind = kind(card)
    keys = member_keys(card)
    _replace(card, "version", ["4.0"])
    card.contents.pop(vcard.KIND, None)
    card.contents.pop(vcard.MEMBER, None)
    _replace(card, KIND4, [group_kind.upper()])
    _replace(card, MEMBER4, keys)
    return card


def to_v3_text(text: str) -> str:
    """What a CardDAV reader gets by default for a stored card (unreadable: as stored)."""
    try:
        card = vcard.parse(text)
    except vcard.CardError:
        return text
    if version(card) != "4.0":
        return text
    group_kind = kind(card)
    keys = member_keys(card)
    _replace(card, "version", ["3.0"])
    card.contents.pop(KIND4, None)
    card.contents.pop(MEMBER4, None)
    _replace(card, vcard.KIND, [group_kind.upper()])
    _replace(card, vcard.MEMBER, [URN + (f'"{k}"' if ":" in k else k) for k in keys])
    if not card.contents.get("n"):
        card.add("n").value = vobject.vcard.Name()
    return str(card.serialize())


def to_v4_text(text: str) -> str:
    try:
        card = vcard.parse(text)
    except vcard.CardError:
        return text
    return text if version(card) == "4.0" else str(to_v4(card).serialize())


def _replace(card: Any, prop: str, values: list[str]) -> None:
    card.contents.pop(prop, None)
    for value in values:
        card.add(prop).value = value
