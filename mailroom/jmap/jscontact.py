"""JSContact cards (RFC 9553) as JMAP Contacts (RFC 9610) serves them: pure functions.

Everything here reads defensively: a card is whatever JSON the server sent,
so a property of the wrong type reads as absent, never as an exception.
Writes follow the same rules as the vCard side: only empty fields are
filled, and group membership is a patch of one key (``members/<uid>``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from mailroom.contacts.book import ContactKind
from mailroom.contacts.names import company_name, split_name

GROUP_PROPERTIES = ("id", "uid", "kind", "name", "addressBookIds", "members")
MAILROOM_EMAIL_KEY = "mailroom"  # the key of an address Mailroom adds to a card


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def uid(card: Mapping[str, Any]) -> str:
    return _text(card.get("uid"))


def is_group(card: Mapping[str, Any]) -> bool:
    return _text(card.get("kind")).lower() == "group"


def emails(card: Mapping[str, Any]) -> set[str]:
    out = set()
    for entry in _dict(card.get("emails")).values():
        address = _text(_dict(entry).get("address")).lower()
        if address:
            out.add(address)
    return out


def members(card: Mapping[str, Any]) -> list[str]:
    """The member keys exactly as the server holds them (compare with ``contacts.uids``)."""
    return [key for key, value in _dict(card.get("members")).items() if value is True]


def has_members_map(card: Mapping[str, Any]) -> bool:
    """A group without a ``members`` object takes a whole map, not a key patch (RFC 8620 §5.3)."""
    return isinstance(card.get("members"), dict)


def address_books(card: Mapping[str, Any]) -> set[str]:
    return {key for key, value in _dict(card.get("addressBookIds")).items() if value is True}


def email_phrase(address: str) -> str:
    """``address`` as one quoted phrase for the ``email`` filter of ContactCard/query.

    Cyrus (Fastmail) reads that filter as a search query: words must all
    appear, and a ``'`` opens a phrase, so ``o'brien@example.com`` sent bare
    never finds its own card. A phrase matches as a case-insensitive
    substring; ``\\`` and ``'`` are escaped inside it. The caller still
    compares the exact address.
    """
    return "'" + address.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _components(name: Mapping[str, Any]) -> list[tuple[str, str]]:
    raw = name.get("components")
    if not isinstance(raw, list):
        return []
    out = []
    for part in raw:
        part = _dict(part)
        value = _text(part.get("value"))
        if value:
            out.append((_text(part.get("kind")), value))
    return out


def display_name(card: Mapping[str, Any]) -> str:
    """``name.full``, else the name's components joined: what a person would read."""
    name = _dict(card.get("name"))
    full = _text(name.get("full"))
    if full:
        return full
    return " ".join(value for kind, value in _components(name) if kind != "separator")


def _has_person_name(card: Mapping[str, Any]) -> bool:
    return any(kind in ("given", "surname") for kind, _ in _components(_dict(card.get("name"))))


def _has_organization(card: Mapping[str, Any]) -> bool:
    return any(_text(_dict(org).get("name")) for org in _dict(card.get("organizations")).values())


def _person_components(name: str) -> list[dict[str, str]]:
    given, family = split_name(name)
    parts = [{"@type": "NameComponent", "kind": "given", "value": given}]
    if family:
        parts.append({"@type": "NameComponent", "kind": "surname", "value": family})
    return parts


def new_card(
    contact_uid: str, address: str, name: str, kind: ContactKind, book_id: str
) -> dict[str, Any]:
    card: dict[str, Any] = {
        "@type": "Card",
        "version": "1.0",
        "uid": contact_uid,
        "kind": "individual" if kind == "person" else "org",
        "addressBookIds": {book_id: True},
        "name": {"@type": "Name", "full": name or address},
        "emails": {MAILROOM_EMAIL_KEY: {"@type": "EmailAddress", "address": address}},
    }
    if kind == "person" and name:
        card["name"]["components"] = _person_components(name)
    if kind == "company":
        card["organizations"] = {
            "org": {"@type": "Organization", "name": company_name(address, name)}
        }
    return card


def new_group(group_uid: str, name: str, book_id: str) -> dict[str, Any]:
    return {
        "@type": "Card",
        "version": "1.0",
        "uid": group_uid,
        "kind": "group",
        "addressBookIds": {book_id: True},
        "name": {"@type": "Name", "full": name},
        # Present from the start, so every later join is a patch of one key.
        "members": {},
    }


# What ``new_card`` writes, and what a server keeps beside it on its own:
# a card with any other property was edited by someone.
_MAILROOM_PROPERTIES = frozenset(
    {"@type", "version", "uid", "id", "kind", "addressBookIds", "name", "emails"}
    | {"organizations", "created", "updated", "prodId"}
)


def pristine(
    card: Mapping[str, Any],
    address: str,
    name: str,
    kind: ContactKind,
    fills: Sequence[tuple[str, ContactKind]] = (),
) -> bool:
    """True when ``card`` holds what ``new_card`` writes, then what the
    ``fill_patch`` of each of ``fills`` (name, kind) added, and nothing else:
    nobody but Mailroom changed it. A fill that may not have landed may be
    absent (a decision stopped part-way)."""
    if set(card) - _MAILROOM_PROPERTIES:
        return False
    mails = _dict(card.get("emails"))
    if len(mails) != 1 or emails(card) != {address.lower()}:
        return False
    found = _shape(card)
    return any(found == _shape(expected) for expected in _written(address, name, kind, fills))


def _written(
    address: str, name: str, kind: ContactKind, fills: Sequence[tuple[str, ContactKind]]
) -> list[dict[str, Any]]:
    """Every card Mailroom's writes can have left: made, then each fill landed or not."""
    cards = [new_card("", address, name, kind, "")]
    for fill_name, fill_kind in fills[:MAX_FILLS]:
        for card in list(cards):
            patch = fill_patch(card, address, fill_name, fill_kind)
            if patch:
                cards.append(_patched(card, patch))
    return cards


MAX_FILLS = 4  # re-triages between kinds remembered for a card (2**4 shapes at most)


def _shape(card: Mapping[str, Any]) -> tuple[object, ...]:
    """What Mailroom writes on a contact, as comparable values."""
    name = _dict(card.get("name"))
    organizations = _dict(card.get("organizations")).values()
    return (
        _text(name.get("full")),
        _text(card.get("kind")).lower() or "individual",
        tuple(value for part, value in _components(name) if part != "separator"),
        tuple(sorted(_text(_dict(o).get("name")) for o in organizations)),
    )


def _patched(card: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``card`` with a PatchObject of ``fill_patch``'s kind applied (RFC 8620 §5.3)."""
    out: dict[str, Any] = copy.deepcopy(dict(card))
    for path, value in patch.items():
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")]
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(value)
    return out


def fill_patch(
    card: Mapping[str, Any], address: str, name: str, kind: ContactKind
) -> dict[str, Any]:
    """The PatchObject filling the card's empty fields; empty when nothing is missing.

    Never overwrites: each path written is one the card does not have (or
    has empty). A property holding something that is not an object is not
    JSContact; it is left alone rather than replaced.
    """
    patch: dict[str, Any] = {}
    current = card.get("name")
    if not display_name(card):
        if isinstance(current, dict):
            if not current.get("full"):
                patch["name/full"] = name or address
        elif not current:
            patch["name"] = {"@type": "Name", "full": name or address}
    if kind == "person" and name and not _has_person_name(card):
        if "name" in patch:
            patch["name"]["components"] = _person_components(name)
        elif isinstance(current, dict) and not current.get("components"):
            patch["name/components"] = _person_components(name)
    mails = card.get("emails")
    if address.lower() not in emails(card):
        entry = {"@type": "EmailAddress", "address": address}
        if isinstance(mails, dict):
            key = MAILROOM_EMAIL_KEY
            number = 1
            while key in mails:
                number += 1
                key = f"{MAILROOM_EMAIL_KEY}{number}"
            patch[f"emails/{pointer_escape(key)}"] = entry
        elif not mails:
            patch["emails"] = {MAILROOM_EMAIL_KEY: entry}
    orgs = card.get("organizations")
    if kind == "company" and not _has_organization(card):
        org = {"@type": "Organization", "name": company_name(address, name)}
        if isinstance(orgs, dict) and orgs:
            key = "mailroom" if "mailroom" not in orgs else f"mailroom{len(orgs)}"
            patch[f"organizations/{pointer_escape(key)}"] = org
        elif not orgs:
            patch["organizations"] = {"org": org}
    return patch


def pointer_escape(key: str) -> str:
    """A map key as one JSON Pointer segment (RFC 6901): ``~`` and ``/`` escaped."""
    return key.replace("~", "~0").replace("/", "~1")


def member_path(member_uid: str) -> str:
    return "members/" + pointer_escape(member_uid)
