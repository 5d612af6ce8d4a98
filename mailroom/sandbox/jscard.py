"""JSContact cards as the stand-in reads and writes them (RFC 9553 over its
vCard store): the properties it maps, the type checks it makes of a write,
writing one property into a vCard, and the ``ContactCard/query`` filter."""

from __future__ import annotations

from typing import Any

import vobject

from mailroom.sandbox import cards as vcard
from mailroom.sandbox import vcard_versions
from mailroom.sandbox.mailmodel import MethodError
from mailroom.sandbox.textsearch import TextQuery

# The @type each sub-object must have when it says one.
TYPES = {"name": "Name", "emails": "EmailAddress", "organizations": "Organization"}


# vCard properties the view above maps; the rest are carried as RFC 9555 does.
MAPPED = frozenset(
    {"version", "uid", "fn", "n", "org", "email", "kind", "rev", "prodid"}
    | {vcard.KIND, vcard.MEMBER, vcard_versions.KIND4, vcard_versions.MEMBER4}
)


def the_rest(card: Any) -> dict[str, Any]:
    """Every other property, as a server converting vCard to JSContact shows it
    (phones, notes, nicknames, and ``vCardProps`` for the rest): a card the
    user edited never reads as the bare one Mailroom wrote."""
    out: dict[str, Any] = {}
    for prop, lines in sorted(card.contents.items()):
        for number, line in enumerate(lines, 1):
            value = " ".join(map(str, line.value)) if isinstance(line.value, list) else line.value
            text = str(value)
            if prop == "tel":
                out.setdefault("phones", {})[f"p{number}"] = {"@type": "Phone", "number": text}
            elif prop == "note":
                out.setdefault("notes", {})[f"n{number}"] = {"@type": "Note", "note": text}
            elif prop == "nickname":
                out.setdefault("nicknames", {})[f"k{number}"] = {"@type": "Nickname", "name": text}
            elif prop not in MAPPED:
                out.setdefault("vCardProps", []).append([prop, {}, "unknown", text])
    return out


def raw(card: Any, prop: str) -> str:
    lines = card.contents.get(prop, [])
    value = lines[0].value if lines else ""
    return value.strip() if isinstance(value, str) else ""


def bad_types(props: dict[str, Any]) -> list[str]:
    """Paths of sub-objects whose ``@type`` is given and is not theirs."""
    bad = []
    for prop, want in TYPES.items():
        value = props.get(prop)
        if not isinstance(value, dict):
            continue
        if prop == "name":
            entries = {"": value}
        else:
            entries = {k: v for k, v in value.items() if isinstance(v, dict)}
        for key, entry in entries.items():
            if "@type" in entry and entry["@type"] != want:
                bad.append(f"{prop}/{key}/@type" if key else f"{prop}/@type")
    return bad


def write_property(card: Any, prop: str, value: Any) -> None:
    """Rewrite the vCard 4.0 lines one JSContact property maps to; others stay as they are."""
    if prop == "name":
        name = value if isinstance(value, dict) else {}
        full = name.get("full")
        card.contents.pop("fn", None)
        given = " ".join(
            str(c.get("value", ""))
            for c in name.get("components") or []
            if isinstance(c, dict) and c.get("kind") == "given"
        )
        family = " ".join(
            str(c.get("value", ""))
            for c in name.get("components") or []
            if isinstance(c, dict) and c.get("kind") == "surname"
        )
        card.add("fn").value = str(full) if isinstance(full, str) else f"{given} {family}".strip()
        card.contents.pop("n", None)
        card.add("n").value = vobject.vcard.Name(family=family, given=given)
    elif prop == "organizations":
        card.contents.pop("org", None)
        for org in (value or {}).values() if isinstance(value, dict) else []:
            if isinstance(org, dict) and isinstance(org.get("name"), str):
                card.add("org").value = [org["name"]]
    elif prop == "emails":
        card.contents.pop("email", None)
        for entry in (value or {}).values() if isinstance(value, dict) else []:
            if isinstance(entry, dict) and isinstance(entry.get("address"), str):
                card.add("email").value = entry["address"]
    elif prop == "members":
        # Stored exactly as sent: no spelling of a uid is rewritten into another.
        card.contents.pop(vcard_versions.MEMBER4, None)
        for key, on in (value or {}).items() if isinstance(value, dict) else []:
            if on is True:
                card.add(vcard_versions.MEMBER4).value = key


def matches(view: dict[str, Any], flt: Any) -> bool:
    if not isinstance(flt, dict):
        raise MethodError("invalidArguments", "filter must be an object")
    if "operator" in flt:
        results = [matches(view, c) for c in flt.get("conditions") or []]
        op = flt["operator"]
        if op == "AND":
            return all(results)
        if op == "OR":
            return any(results)
        if op == "NOT":
            return not any(results)
        raise MethodError("unsupportedFilter", f"operator {op!r}")
    return all(condition(view, key, wanted) for key, wanted in flt.items())


def condition(view: dict[str, Any], key: str, wanted: Any) -> bool:
    if not isinstance(wanted, str):
        raise MethodError("invalidArguments", f"filter {key!r} must be a string")
    if key == "email":
        addresses = [str(e.get("address", "")) for e in (view.get("emails") or {}).values()]
        return TextQuery.parse(wanted).matches(" ".join(a for a in addresses if a))
    if key == "kind":
        return bool(view.get("kind") == wanted)
    if key == "uid":
        return bool(view.get("uid") == wanted)
    if key == "hasMember":
        return wanted in (view.get("members") or {})
    if key == "inAddressBook":
        return wanted in (view.get("addressBookIds") or {})
    if key in ("name", "text"):
        return TextQuery.parse(wanted).matches(str((view.get("name") or {}).get("full", "")))
    raise MethodError("unsupportedFilter", f"condition {key!r}")


def set_error(exc: MethodError) -> dict[str, Any]:
    err: dict[str, Any] = {"type": exc.type}
    if exc.description:
        err["description"] = exc.description
    if exc.properties:
        err["properties"] = exc.properties
    return err
