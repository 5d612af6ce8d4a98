"""JMAP Contacts (RFC 9610) in the stand-in, behaving as Cyrus (Fastmail's server) does.

One store serves both protocols, as on Fastmail: every ContactCard is a view
of a stored vCard. What Cyrus does, the stand-in does too, never more
leniently (each is pinned on both by ``tests/contract``):

- the ``email`` filter is a search query (``textsearch``): words, and
  ``'…'`` phrases;
- member keys are stored exactly as sent: ``X`` and ``urn:uuid:X`` are two
  keys, and a ``null`` for the other spelling changes nothing;
- a new card needs ``@type: "Card"`` and ``version: "1.0"``, and a
  sub-object's ``@type``, when given, must be its own;
- a card names exactly one address book, which must be writable; a card in
  the read-only book cannot be changed (``accountReadOnly``);
- JMAP writes keep vCard 4.0, read over CardDAV as 3.0 with every member
  prefixed ``urn:uuid:`` (``vcard_versions``);
- a patch below a property the card does not have is ``invalidPatch``
  (RFC 8620 §5.3); ``maxObjectsInSet`` holds for every ``/set``.

Methods: ``AddressBook/get``, ``ContactCard/get|query|set``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from mailroom.sandbox import cards as vcard
from mailroom.sandbox import vcard_versions
from mailroom.sandbox.cards import CardError
from mailroom.sandbox.contactstore import BOOKS, DEFAULT_BOOK, ContactStore
from mailroom.sandbox.jscard import (
    WRITABLE,
    apply_patch,
    bad_types,
    card_view,
    matches,
    new_card,
    raw,
    set_error,
    write_property,
)
from mailroom.sandbox.mailmodel import ACCOUNT_ID, Args, MethodError, set_answer

_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
BOOK_ID = DEFAULT_BOOK


class ContactCardApi:
    """The methods, keyed by name, for the stand-in's JMAP API."""

    def __init__(
        self,
        store: ContactStore,
        *,
        max_get: int = 500,
        max_set: int = 500,
        query_limit: int = 1000,
    ) -> None:
        self.store = store
        self.max_get = max_get
        self.max_set = max_set
        self.query_limit = query_limit
        # A server that leaves an empty ``members`` out of a group (RFC 9610
        # allows it): a patch of one member key then has no parent.
        self.omit_empty_members = False

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

    def _cards(self) -> dict[str, tuple[str, Any, str]]:
        """Every readable card: id -> (store name, parsed vCard, address book)."""
        out = {}
        with self.store.lock:
            items = sorted(self.store.cards.items())
        for name, stored in items:
            try:
                out[self.card_id(name)] = (name, vcard.parse(stored.text, name), stored.book)
            except CardError:
                continue  # what a server cannot read, it does not show over JMAP
        return out

    def _views(self) -> dict[str, dict[str, Any]]:
        omit = self.omit_empty_members
        return {
            cid: card_view(cid, card, book, omit_empty_members=omit)
            for cid, (_, card, book) in self._cards().items()
        }

    # -- methods ---------------------------------------------------------------------

    def _book_get(self, args: Args) -> Args:
        ids = args.get("ids")
        wanted = list(BOOKS) if ids is None else ids
        if not isinstance(wanted, list):
            raise MethodError("invalidArguments", "ids")
        found = [
            {
                "id": book.id,
                "name": book.name,
                "description": None,
                "sortOrder": 0,
                "isDefault": book.id == DEFAULT_BOOK,
                "isSubscribed": True,
                "shareWith": None,
                "myRights": {
                    "mayRead": True,
                    "mayWrite": book.writable,
                    "mayShare": False,
                    "mayDelete": False,
                },
            }
            for book_id, book in BOOKS.items()
            if book_id in wanted
        ]
        return {
            "accountId": ACCOUNT_ID,
            "state": "0",
            "list": found,
            "notFound": [i for i in wanted if i not in BOOKS],
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
        ids = [cid for cid in sorted(views) if flt is None or matches(views[cid], flt)]
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
        create = args.get("create") or {}
        update = args.get("update") or {}
        destroy = args.get("destroy") or []
        if not isinstance(create, dict) or not isinstance(update, dict):
            raise MethodError("invalidArguments", "create and update must be objects")
        if not isinstance(destroy, list):
            raise MethodError("invalidArguments", "destroy must be a list")
        if len(create) + len(update) + len(destroy) > self.max_set:
            raise MethodError("requestTooLarge", f"maxObjectsInSet is {self.max_set}")
        old = self._state()
        taken = {raw(card, "uid") for _, card, _ in self._cards().values()} if create else set()
        created: Args = {}
        not_created: Args = {}
        updated: Args = {}
        not_updated: Args = {}
        for key, props in create.items():
            try:
                created[key] = self._create(props, taken)
            except MethodError as exc:
                not_created[key] = set_error(exc)
        for card_id, patch in update.items():
            try:
                self._update(card_id, patch)
                updated[card_id] = None
            except MethodError as exc:
                not_updated[card_id] = set_error(exc)
        destroyed, not_destroyed = [], {}
        for card_id in destroy:
            try:
                name = self._writable_name(str(card_id))
            except MethodError as exc:
                not_destroyed[card_id] = set_error(exc)
                continue
            with self.store.lock:
                self.store.cards.pop(name, None)
            destroyed.append(card_id)
        return set_answer(
            old,
            self._state(),
            created=created,
            notCreated=not_created,
            updated=updated,
            notUpdated=not_updated,
            destroyed=destroyed,
            notDestroyed=not_destroyed,
        )

    def _writable_name(self, card_id: str) -> str:
        """The store name of a card that may be changed; notFound or accountReadOnly."""
        with self.store.lock:
            for name, stored in self.store.cards.items():
                if self.card_id(name) == card_id:
                    if not BOOKS[stored.book].writable:
                        raise MethodError("accountReadOnly")
                    return name
        raise MethodError("notFound")

    def _create(self, props: Any, taken: set[str]) -> Args:
        if not isinstance(props, dict):
            raise MethodError("invalidProperties", "a Card must be an object")
        bad = [p for p, want in (("@type", "Card"), ("version", "1.0")) if props.get(p) != want]
        bad += bad_types(props)
        books = props.get("addressBookIds", {DEFAULT_BOOK: True})
        if (
            not isinstance(books, dict)
            or len(books) != 1
            or any(
                b not in BOOKS or not BOOKS[b].writable or v is not True for b, v in books.items()
            )
        ):
            bad.append("addressBookIds")
        card_uid = props.get("uid", str(uuid.uuid4()))
        if not isinstance(card_uid, str) or not card_uid.strip() or card_uid in taken:
            bad.append("uid")
        if bad:
            raise MethodError("invalidProperties", ", ".join(bad), properties=bad)
        (book,) = books
        kind = props.get("kind", "individual")
        card = new_card(card_uid, str(kind), {p: props[p] for p in WRITABLE if p in props})
        self._refuse_if_asked(card)
        stem = str(uuid.uuid4())
        self.store.write(f"{stem}.vcf", str(card.serialize()), book)
        taken.add(card_uid)
        return {"id": self.card_id(f"{stem}.vcf"), "uid": card_uid}

    def _update(self, card_id: Any, patch: Any) -> None:
        name = self._writable_name(str(card_id))
        if not isinstance(patch, dict):
            raise MethodError("invalidPatch", "a PatchObject must be an object")
        with self.store.lock:
            stored = self.store.cards[name]
            card = vcard.parse(stored.text, name)
            view = card_view(
                str(card_id), card, stored.book, omit_empty_members=self.omit_empty_members
            )
            touched = apply_patch(view, patch)
            vcard_versions.to_v4(card)
            for top in sorted(touched):
                write_property(card, top, view.get(top))
            self._refuse_if_asked(card)
            self.store.write(name, str(card.serialize()), stored.book)

    def _refuse_if_asked(self, card: Any) -> None:
        if self.store.refuses(vcard.parse(vcard_versions.to_v3_text(str(card.serialize())))):
            raise MethodError("forbidden", "the stand-in was told to refuse this contact")
