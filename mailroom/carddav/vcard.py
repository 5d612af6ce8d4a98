"""vCard 3.0 contacts and Apple-style groups, read and written with vobject.

Groups are cards with ``X-ADDRESSBOOKSERVER-KIND:group`` whose members are
``X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:<UID>`` lines: the format Fastmail and
Cyrus keep as written and Fastmail's rules match on. Edits keep every property
Mailroom does not own (the user's notes, phones, REV …) untouched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import vobject

from mailroom.contacts import uids
from mailroom.contacts.book import ContactKind
from mailroom.contacts.names import company_name, split_name
from mailroom.errors import ServerError

KIND = "x-addressbookserver-kind"
MEMBER = "x-addressbookserver-member"
UUID_PREFIX = uids.URN_UUID


class VCardError(ServerError, ValueError):
    """A card that cannot be parsed or lacks what Mailroom needs."""


def parse(text: str, where: str = "vCard") -> Any:
    try:
        card = vobject.readOne(text)
    except Exception as exc:  # vobject raises a zoo of exception types
        raise VCardError(f"{where}: cannot parse ({type(exc).__name__})") from None
    if card.name.upper() != "VCARD":
        raise VCardError(f"{where}: not a VCARD but {card.name}")
    return card


def _values(card: Any, prop: str) -> list[Any]:
    return [line.value for line in card.contents.get(prop, [])]


def _first(card: Any, prop: str) -> str:
    values = _values(card, prop)
    return str(values[0]).strip() if values and isinstance(values[0], str) else ""


def uid(card: Any) -> str:
    value = uids.canonical(_first(card, "uid"))
    if not value:
        raise VCardError("vCard has no UID")
    return value


def emails(card: Any) -> set[str]:
    return {str(v).strip().lower() for v in _values(card, "email") if str(v).strip()}


def addresses_in(text: str) -> set[str]:
    """The EMAIL values of a card that does not parse, read line by line (lower case)."""
    unfolded = re.sub(r"\r?\n[ \t]", "", text)
    return {
        m.group(1).strip().lower()
        for m in re.finditer(
            r"^(?:[\w-]+\.)?EMAIL(?:;[^:\r\n]*)?:([^\r\n]*)$", unfolded, re.I | re.M
        )
        if m.group(1).strip()
    }


def is_group(card: Any) -> bool:
    return _first(card, KIND).lower() == "group"


def display_name(card: Any) -> str:
    return _first(card, "fn")


def members(card: Any) -> set[str]:
    """The member uids, however each line spells them (``contacts.uids``)."""
    out = set()
    for value in _values(card, MEMBER):
        text = uids.canonical(str(value))
        if text:
            out.add(text)
    return out


def _set_single(card: Any, prop: str, value: Any) -> None:
    card.contents.pop(prop, None)
    card.add(prop).value = value


def new_group(group_uid: str, name: str) -> str:
    card = vobject.vCard()
    card.add("version").value = "3.0"
    card.add("uid").value = group_uid
    card.add("fn").value = name
    card.add("n").value = vobject.vcard.Name(family=name)
    card.add(KIND).value = "group"
    return str(card.serialize())


def with_member(text: str, member_uid: str) -> str | None:
    """The group card with ``member_uid`` added, or None if already a member."""
    return edit_members(text, add=[member_uid])


def without_member(text: str, member_uid: str) -> str | None:
    """The group card with ``member_uid`` removed, or None if not a member."""
    return edit_members(text, remove=[member_uid])


def edit_members(text: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> str | None:
    """The group card with members added and removed, or None if nothing changes.

    Every other line of the card is kept as it was.
    """
    card = parse(text, "group")
    gone = {uids.canonical(u) for u in remove}
    lines = card.contents.get(MEMBER, [])
    # Every line naming a leaving member goes, however it spells the uid.
    keep = [ln for ln in lines if uids.canonical(str(ln.value)) not in gone]
    present = {uids.canonical(str(ln.value)) for ln in keep}
    new = [
        uid
        for uid in dict.fromkeys(uids.canonical(u) for u in add)
        if uid and uid not in present and uid not in gone
    ]
    if len(keep) == len(lines) and not new:
        return None
    if keep:
        card.contents[MEMBER] = keep
    else:
        card.contents.pop(MEMBER, None)
    for uid in new:
        card.add(MEMBER).value = UUID_PREFIX + uid
    return str(card.serialize())


def new_contact(contact_uid: str, address: str, name: str, kind: ContactKind) -> str:
    card = vobject.vCard()
    card.add("version").value = "3.0"
    card.add("uid").value = contact_uid
    card.add("fn").value = name or address
    if kind == "person":
        given, family = split_name(name)
        card.add("n").value = vobject.vcard.Name(family=family, given=given)
    else:
        card.add("n").value = vobject.vcard.Name()
        card.add("org").value = [company_name(address, name)]
        card.add("x-abshowas").value = "COMPANY"
    line = card.add("email")
    line.value = address
    line.type_param = "INTERNET"
    return str(card.serialize())


# What ``new_contact`` writes, and what a server adds on its own (REV, PRODID):
# a card with any other property was edited by someone.
_MAILROOM_PROPERTIES = frozenset(
    {"version", "uid", "fn", "n", "email", "org", "x-abshowas", "rev", "prodid"}
)


def pristine(
    card: Any,
    address: str,
    name: str,
    kind: ContactKind,
    fills: Sequence[tuple[str, ContactKind]] = (),
) -> bool:
    """True when the parsed ``card`` holds what ``new_contact`` writes, then what
    ``fill_contact`` added for each of ``fills`` (name, kind), and nothing else.
    A fill that may not have landed may be absent (a decision stopped part-way)."""
    if set(card.contents) - _MAILROOM_PROPERTIES:
        return False
    if len(_values(card, "email")) != 1 or emails(card) != {address.lower()}:
        return False
    found = _shape(card)
    return any(found == _shape(parse(text)) for text in _written(address, name, kind, fills))


MAX_FILLS = 4  # re-triages between kinds remembered for a card (2**4 shapes at most)


def _written(
    address: str, name: str, kind: ContactKind, fills: Sequence[tuple[str, ContactKind]]
) -> list[str]:
    """Every card Mailroom's writes can have left: made, then each fill landed or not."""
    cards = [new_contact("x", address, name, kind)]
    for fill_name, fill_kind in fills[:MAX_FILLS]:
        for text in list(cards):
            filled = fill_contact(text, address, fill_name, fill_kind)
            if filled is not None:
                cards.append(filled)
    return cards


def _shape(card: Any) -> tuple[object, ...]:
    """What Mailroom writes on a contact, as comparable values."""
    n = _values(card, "n")
    parts = (
        (_joined(getattr(n[0], "given", "")), _joined(getattr(n[0], "family", "")))
        if n
        else ("", "")
    )
    return (
        display_name(card),
        parts,
        tuple(sorted(_joined(v) for v in _values(card, "org"))),
        bool(_values(card, "x-abshowas")),
    )


def _joined(value: Any) -> str:
    """A structured value's parts (vobject gives a list or a string) as one string."""
    return " ".join(map(str, value)).strip() if isinstance(value, list) else str(value).strip()


def fill_contact(text: str, address: str, name: str, kind: ContactKind) -> str | None:
    """Fill the contact's empty fields; never overwrite what the user wrote.

    Returns the new card, or None when there was nothing to fill.
    """
    card = parse(text, "contact")
    changed = False
    if not _first(card, "fn"):
        _set_single(card, "fn", name or address)
        changed = True
    if address.lower() not in emails(card):
        line = card.add("email")
        line.value = address
        line.type_param = "INTERNET"
        changed = True
    if kind == "person" and name:
        current = _values(card, "n")
        n = current[0] if current else None
        if n is None or not (str(n.family).strip() or str(n.given).strip()):
            given, family = split_name(name)
            _set_single(card, "n", vobject.vcard.Name(family=family, given=given))
            changed = True
    if kind == "company":
        orgs = _values(card, "org")
        if not orgs or not any(str(part).strip() for part in orgs[0]):
            _set_single(card, "org", [company_name(address, name)])
            changed = True
    if not _values(card, "n"):
        # vCard 3.0 requires N; some clients write cards without it.
        card.add("n").value = vobject.vcard.Name()
        changed = True
    return str(card.serialize()) if changed else None
