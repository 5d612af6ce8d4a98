"""JMAP Contacts (RFC 9610) in the stand-in: the subset Mailroom uses, over the CardDAV store.

One store serves both protocols, as on Fastmail: every ContactCard is a view
of a stored vCard, and JMAP writes edit that vCard, keeping every line they
do not own. The UID is the join key: a group member ``urn:uuid:X`` and a
card whose UID is ``X`` or ``urn:uuid:X`` are the same contact.

Methods: ``AddressBook/get``, ``ContactCard/get|query|set`` with the
filters ``email``, ``kind``, ``uid``, ``hasMember``, ``inAddressBook``,
``name`` and ``text``, and patches of ``name``, ``organizations``,
``emails`` and ``members`` (whole or one key deep).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import vobject

from mailroom.carddav import vcard
from mailroom.carddav.vcard import VCardError
from mailroom.sandbox.contactstore import ContactStore
from mailroom.sandbox.mailstore import ACCOUNT_ID, Args, MethodError

BOOK_ID = "default"
_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
_WRITABLE = ("name", "organizations", "emails", "members")
URN = "urn:uuid:"


class ContactCardApi:
    """The methods, keyed by name, for the stand-in's JMAP API."""

    def __init__(self, store: ContactStore, *, max_get: int = 500, query_limit: int = 1000) -> None:
        self.store = store
        self.max_get = max_get
        self.query_limit = query_limit

    def methods(self) -> dict[str, Callable[[Args], Args]]:
        return {
            "AddressBook/get": self._book_get,
            "ContactCard/get": self._card_get,
            "ContactCard/query": self._card_query,
            "ContactCard/set": self._card_set,
        }

    # -- views -----------------------------------------------------------------------

    def _state(self) -> str:
        return str(self.store.etag_counter)

    @staticmethod
    def card_id(name: str) -> str:
        stem = name.removesuffix(".vcf")
        return stem if _ID.fullmatch(stem) else "x" + uuid.uuid5(uuid.NAMESPACE_URL, name).hex

    def _cards(self) -> dict[str, tuple[str, Any]]:
        """Every readable card: id -> (store name, parsed vCard)."""
        out = {}
        with self.store.lock:
            items = sorted(self.store.cards.items())
        for name, stored in items:
            try:
                out[self.card_id(name)] = (name, vcard.parse(stored.text, name))
            except VCardError:
                continue  # what a server cannot read, it does not show over JMAP
        return out

    def _view(self, card_id: str, card: Any, uids: dict[str, str]) -> dict[str, Any]:
        view: dict[str, Any] = {
            "@type": "Card",
            "version": "1.0",
            "id": card_id,
            "addressBookIds": {BOOK_ID: True},
            "uid": _raw(card, "uid"),
        }
        if vcard.is_group(card):
            view["kind"] = "group"
            view["members"] = {uids.get(m, URN + m): True for m in sorted(vcard.members(card))}
        elif _raw(card, "x-abshowas").upper() == "COMPANY":
            view["kind"] = "org"
        else:
            view["kind"] = "individual"
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
        return view

    def _views(self) -> dict[str, dict[str, Any]]:
        cards = self._cards()
        # The join key: a bare UID and its urn:uuid: form name one contact.
        uids = {_bare(_raw(c, "uid")): _raw(c, "uid") for _, c in cards.values()}
        return {cid: self._view(cid, card, uids) for cid, (_, card) in cards.items()}

    # -- methods ---------------------------------------------------------------------

    def _book_get(self, args: Args) -> Args:
        book = {
            "id": BOOK_ID,
            "name": "Personal",
            "description": None,
            "sortOrder": 0,
            "isDefault": True,
            "isSubscribed": True,
            "shareWith": None,
            "myRights": {"mayRead": True, "mayWrite": True, "mayShare": False, "mayDelete": False},
        }
        ids = args.get("ids")
        wanted = [BOOK_ID] if ids is None else ids
        if not isinstance(wanted, list):
            raise MethodError("invalidArguments", "ids")
        return {
            "accountId": ACCOUNT_ID,
            "state": "0",
            "list": [book] if BOOK_ID in wanted else [],
            "notFound": [i for i in wanted if i != BOOK_ID],
        }

    def _card_get(self, args: Args) -> Args:
        views = self._views()
        ids = args.get("ids")
        if ids is None:
            ids = sorted(views)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise MethodError("invalidArguments", "ids must be a list of ids or null")
        if len(ids) > self.max_get:
            raise MethodError("requestTooLarge", f"maxObjectsInGet is {self.max_get}")
        props = args.get("properties")
        out, missing = [], []
        for card_id in ids:
            view = views.get(card_id)
            if view is None:
                missing.append(card_id)
                continue
            if isinstance(props, list):
                view = {k: v for k, v in view.items() if k in props or k == "id"}
            out.append(view)
        return {"accountId": ACCOUNT_ID, "state": self._state(), "list": out, "notFound": missing}

    def _card_query(self, args: Args) -> Args:
        views = self._views()
        flt = args.get("filter")
        ids = [cid for cid in sorted(views) if flt is None or _matches(views[cid], flt)]
        position = args.get("position", 0)
        limit = args.get("limit")
        if not isinstance(position, int) or position < 0:
            raise MethodError("invalidArguments", "position")
        applied = self.query_limit
        if isinstance(limit, int) and 0 <= limit < applied:
            applied = limit
        out: Args = {
            "accountId": ACCOUNT_ID,
            "queryState": self._state(),
            "canCalculateChanges": False,
            "position": position,
            "ids": ids[position : position + applied],
        }
        if not isinstance(limit, int) or limit > applied:
            out["limit"] = applied
        if args.get("calculateTotal"):
            out["total"] = len(ids)
        return out

    def _card_set(self, args: Args) -> Args:
        old = self._state()
        created: Args = {}
        not_created: Args = {}
        updated: Args = {}
        not_updated: Args = {}
        for key, props in (args.get("create") or {}).items():
            try:
                created[key] = self._create(props)
            except MethodError as exc:
                not_created[key] = _set_error(exc)
        for card_id, patch in (args.get("update") or {}).items():
            try:
                self._update(card_id, patch)
                updated[card_id] = None
            except MethodError as exc:
                not_updated[card_id] = _set_error(exc)
        destroyed, not_destroyed = [], {}
        for card_id in args.get("destroy") or []:
            name = self._name_of(card_id)
            if name is None:
                not_destroyed[card_id] = {"type": "notFound"}
                continue
            with self.store.lock:
                self.store.cards.pop(name, None)
            destroyed.append(card_id)
        return {
            "accountId": ACCOUNT_ID,
            "oldState": old,
            "newState": self._state(),
            "created": created or None,
            "notCreated": not_created or None,
            "updated": updated or None,
            "notUpdated": not_updated or None,
            "destroyed": destroyed or None,
            "notDestroyed": not_destroyed or None,
        }

    def _name_of(self, card_id: str) -> str | None:
        with self.store.lock:
            for name in self.store.cards:
                if self.card_id(name) == card_id:
                    return name
        return None

    def _create(self, props: Any) -> Args:
        if not isinstance(props, dict):
            raise MethodError("invalidProperties", "a Card must be an object")
        if props.get("@type", "Card") != "Card":
            raise MethodError("invalidProperties", "@type must be Card")
        books = props.get("addressBookIds", {BOOK_ID: True})
        if books != {BOOK_ID: True}:
            raise MethodError("invalidProperties", "addressBookIds: no such address book")
        card_uid = props.get("uid") or f"{URN}{uuid.uuid4()}"
        if not isinstance(card_uid, str):
            raise MethodError("invalidProperties", "uid")
        kind = props.get("kind", "individual")
        card = vobject.vCard()
        card.add("version").value = "3.0"
        card.add("uid").value = card_uid
        if kind == "group":
            card.add(vcard.KIND).value = "group"
        elif kind == "org":
            card.add("x-abshowas").value = "COMPANY"
        for prop in _WRITABLE:
            if prop in props:
                _write_property(card, prop, props[prop])
        if not card.contents.get("fn"):
            addresses = [str(line.value) for line in card.contents.get("email", [])]
            card.add("fn").value = addresses[0] if addresses else ""
        if not card.contents.get("n"):
            card.add("n").value = vobject.vcard.Name()
        self._refuse_if_asked(card)
        stem = str(uuid.uuid4())
        self.store.write(f"{stem}.vcf", str(card.serialize()))
        return {"id": stem, "uid": card_uid}

    def _update(self, card_id: Any, patch: Any) -> None:
        name = self._name_of(str(card_id))
        if name is None:
            raise MethodError("notFound")
        if not isinstance(patch, dict):
            raise MethodError("invalidPatch", "a PatchObject must be an object")
        with self.store.lock:
            stored = self.store.cards[name]
            card = vcard.parse(stored.text, name)
            uids = {_bare(_raw(c, "uid")): _raw(c, "uid") for _, c in self._cards().values()}
            view = self._view(str(card_id), card, uids)
            touched = set()
            for path, value in patch.items():
                parts = [p.replace("~1", "/").replace("~0", "~") for p in str(path).split("/")]
                top = parts[0]
                if top not in _WRITABLE or len(parts) > 2:
                    raise MethodError("invalidPatch", f"cannot patch {path!r} here")
                if top == "members" and view.get("kind") != "group":
                    raise MethodError("invalidPatch", "members: only a group has members")
                touched.add(top)
                if len(parts) == 1:
                    if value is None:
                        view.pop(top, None)
                    else:
                        view[top] = value
                    continue
                holder = view.setdefault(top, {})
                if not isinstance(holder, dict):
                    raise MethodError("invalidPatch", f"{top} is not an object")
                if value is None:
                    holder.pop(parts[1], None)
                else:
                    holder[parts[1]] = value
            for top in sorted(touched):
                _write_property(card, top, view.get(top))
            self._refuse_if_asked(card)
            self.store.write(name, str(card.serialize()))

    def _refuse_if_asked(self, card: Any) -> None:
        if vcard.emails(card) & self.store.refuse_addresses:
            raise MethodError("forbidden", "the stand-in was told to refuse this contact")


def _raw(card: Any, prop: str) -> str:
    lines = card.contents.get(prop, [])
    value = lines[0].value if lines else ""
    return value.strip() if isinstance(value, str) else ""


def _bare(card_uid: str) -> str:
    return card_uid.removeprefix(URN)


def _write_property(card: Any, prop: str, value: Any) -> None:
    """Rewrite the vCard lines one JSContact property maps to; others stay as they are."""
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
                line = card.add("email")
                line.value = entry["address"]
                line.type_param = "INTERNET"
    elif prop == "members":
        card.contents.pop(vcard.MEMBER, None)
        for key, on in (value or {}).items() if isinstance(value, dict) else []:
            if on is True:
                card.add(vcard.MEMBER).value = URN + _bare(key)


def _matches(view: dict[str, Any], flt: Any) -> bool:
    if not isinstance(flt, dict):
        raise MethodError("invalidArguments", "filter must be an object")
    if "operator" in flt:
        results = [_matches(view, c) for c in flt.get("conditions") or []]
        op = flt["operator"]
        if op == "AND":
            return all(results)
        if op == "OR":
            return any(results)
        if op == "NOT":
            return not any(results)
        raise MethodError("unsupportedFilter", f"operator {op!r}")
    return all(_condition(view, key, wanted) for key, wanted in flt.items())


def _condition(view: dict[str, Any], key: str, wanted: Any) -> bool:
    folded = str(wanted).casefold()
    if key == "email":  # a text match (contains), as the RFC allows
        addresses = [str(e.get("address", "")) for e in (view.get("emails") or {}).values()]
        return any(folded in a.casefold() for a in addresses)
    if key == "kind":
        return bool(view.get("kind") == wanted)
    if key == "uid":
        return bool(view.get("uid") == wanted)
    if key == "hasMember":
        return _bare(str(wanted)) in {_bare(m) for m in view.get("members") or {}}
    if key == "inAddressBook":
        return bool(wanted == BOOK_ID)
    if key in ("name", "text"):
        return folded in str((view.get("name") or {}).get("full", "")).casefold()
    raise MethodError("unsupportedFilter", f"condition {key!r}")


def _set_error(exc: MethodError) -> dict[str, Any]:
    err: dict[str, Any] = {"type": exc.type}
    if exc.description:
        err["description"] = exc.description
    return err
