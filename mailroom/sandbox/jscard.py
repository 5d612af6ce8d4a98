"""JSContact cards as the stand-in reads and writes them (RFC 9553 over its
vCard store): a stored vCard's view, the properties it maps, the type checks
it makes of a write, a new card, a patch, writing one property into a vCard,
and the ``ContactCard/query`` filter."""

from __future__ import annotations

from typing import Any

import vobject

from mailroom.sandbox import cards as vcard
from mailroom.sandbox import vcard_versions
from mailroom.sandbox.mailmodel import MethodError
from mailroom.sandbox.textsearch import TextQuery

# What a ContactCard/set may write.
WRITABLE = ("name", "organizations", "emails", "members")

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


def card_view(card_id: str, card: Any, book: str, *, omit_empty_members: bool) -> dict[str, Any]:
    """A stored vCard as the ContactCard a JMAP client reads."""
    view: dict[str, Any] = {
        "@type": "Card",
        "version": "1.0",
        "id": card_id,
        "addressBookIds": {book: True},
        "uid": raw(card, "uid"),
        "kind": vcard_versions.kind(card),
    }
    if view["kind"] == "group":
        keys = vcard_versions.member_keys(card)
        if keys or not omit_empty_members:
            view["members"] = dict.fromkeys(keys, True)
    name: dict[str, Any] = {}
    if vcard.display_name(card):
        name["full"] = vcard.display_name(card)
    components = []
    for line in card.contents.get("n", [])[:1]:
        n = line.value
        for kind, value in (("given", n.given), ("surname", n.family)):
            text = " ".join(value) if isinstance(value, list) else str(value)
            if text.strip():
                components.append({"@type": "NameComponent", "kind": kind, "value": text})
    if components:
        name["components"] = components
    if name:
        view["name"] = {"@type": "Name", **name}
    orgs = {}
    for number, line in enumerate(card.contents.get("org", []), 1):
        parts = line.value if isinstance(line.value, list) else [line.value]
        text = str(parts[0]).strip() if parts else ""
        if text:
            orgs[f"o{number}"] = {"@type": "Organization", "name": text}
    if orgs:
        view["organizations"] = orgs
    emails = {}
    for number, line in enumerate(card.contents.get("email", []), 1):
        if str(line.value).strip():
            emails[f"e{number}"] = {"@type": "EmailAddress", "address": str(line.value).strip()}
    if emails:
        view["emails"] = emails
    view.update(the_rest(card))
    return view


def new_card(uid: str, kind: str, props: dict[str, Any]) -> Any:
    """A new vCard 4.0 (as Cyrus keeps a JMAP write) from a ContactCard's properties."""
    card = vobject.vCard()
    card.add("version").value = "4.0"
    card.add("uid").value = uid
    card.add(vcard_versions.KIND4).value = kind.upper()
    for prop, value in props.items():
        write_property(card, prop, value)
    if not card.contents.get("fn"):
        addresses = [str(line.value) for line in card.contents.get("email", [])]
        card.add("fn").value = addresses[0] if addresses else ""
    return card


def apply_patch(view: dict[str, Any], patch: dict[str, Any]) -> set[str]:
    """Apply a PatchObject (RFC 8620 §5.3) to a card's view, one level deep at
    most, as Cyrus allows; returns the top-level properties it touched."""
    touched = set()
    for path, value in patch.items():
        parts = [p.replace("~1", "/").replace("~0", "~") for p in str(path).split("/")]
        top = parts[0]
        if top not in WRITABLE or len(parts) > 2:
            raise MethodError("invalidPatch", f"cannot patch {path!r} here")
        if top == "members" and view.get("kind") != "group":
            raise MethodError("invalidPatch", "members: only a group has members")
        if bad_types({top: value} if len(parts) == 1 else {top: {parts[1]: value}}):
            raise MethodError("invalidProperties", f"{path}: wrong @type")
        touched.add(top)
        if len(parts) == 1:
            if value is None:
                view.pop(top, None)
            else:
                view[top] = value
            continue
        holder = view.get(top)
        if not isinstance(holder, dict):
            # RFC 8620 §5.3: every parent of a patched path must exist.
            raise MethodError("invalidPatch", f"{path}: {top} does not exist")
        if value is None:
            holder.pop(parts[1], None)
        else:
            holder[parts[1]] = value
    return touched
