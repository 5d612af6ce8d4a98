"""The contact book over JMAP Contacts (RFC 9610), with the API token alone.

A pass costs one request to read (every sender's contact and every managed
group's members) and one ``ContactCard/set`` request to write (new contacts,
filled fields and every membership change; more only past the session's
limits). Membership is a patch of one key (``members/<uid>: true|null``): no
read-modify-write, so no 412 races.

What the server is, as Cyrus (Fastmail) shows it: the ``email`` filter is a
search query (each address is sent as a quoted phrase, the exact address is
compared here); member keys are stored exactly as sent, so a uid and its
``urn:uuid:`` forms are compared by meaning (``contacts.uids``); a card lives
in exactly one address book, and a book may be read-only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mailroom.contacts import uids
from mailroom.contacts.book import (
    ContactAction,
    ContactsBackend,
    ContactsError,
    Known,
    Lookup,
    Twin,
    Want,
)
from mailroom.jmap import cardset, jscontact
from mailroom.jmap.cardquery import objects, query_cards
from mailroom.jmap.client import JmapClient
from mailroom.jmap.contact_writes import ContactWrites
from mailroom.jmap.session import CONTACTS
from mailroom.jmap.wire import Call, Responses, any_of_chunks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AddressBook:
    id: str
    name: str
    default: bool
    writable: bool

    @property
    def label(self) -> str:
        return self.name or self.id


class JmapContactBook(ContactWrites):
    backend = ContactsBackend.JMAP

    def __init__(self, jmap: JmapClient) -> None:
        self._jmap = jmap
        self._groups: dict[str, str] = {}  # name -> ContactCard id
        self._group_cards: dict[str, dict[str, Any]] = {}  # id -> group card, last lookup
        self._books: dict[str, AddressBook] = {}
        self._book_id: str | None = None
        self._cards: dict[str, dict[str, Any]] = {}  # address -> card, from the last lookup

    @property
    def groups(self) -> Mapping[str, str]:
        return dict(self._groups)

    async def open(self) -> str:
        if self._jmap.session.contacts_account_id is None:
            raise ContactsError(f"the JMAP server offers no {CONTACTS}")
        got = (await self._jmap.request([Call("AddressBook/get", {"ids": None}, "b")])).get(
            "b", "AddressBook/get"
        )
        books = [_book(b) for b in objects(got, "AddressBook/get")]
        self._books = {b.id: b for b in books if b is not None}
        if not self._books:
            raise ContactsError("JMAP contacts: the account has no address book")
        # New contacts and groups go to the default book; if that one cannot
        # be written, to the first writable one by id.
        writable = sorted(
            (b for b in self._books.values() if b.writable), key=lambda b: (not b.default, b.id)
        )
        if not writable:
            names = ", ".join(repr(b.label) for b in self._books.values())
            raise ContactsError(
                f"JMAP contacts: no address book can be written ({names} are read-only)"
            )
        self._book_id = writable[0].id
        line = f"JMAP contacts (RFC 9610), address book {writable[0].label!r}"
        read_only = sorted(b.label for b in self._books.values() if not b.writable)
        if read_only:
            line += f" (read-only, never written: {', '.join(map(repr, read_only))})"
        return line

    @property
    def book_id(self) -> str:
        if self._book_id is None:
            raise RuntimeError("JmapContactBook.open() has not run")
        return self._book_id

    def _writable(self, card: Mapping[str, Any]) -> bool:
        """False only when every book the card names is known and read-only."""
        books = jscontact.address_books(card)
        known = [self._books[b] for b in books if b in self._books]
        return not known or len(known) < len(books) or any(b.writable for b in known)

    def _rank(self, card: Mapping[str, Any]) -> tuple[bool, str]:
        """Which of several matching cards to use: a writable one, then the lowest id."""
        return (not self._writable(card), str(card.get("id")))

    async def find_groups(self, names: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(names))
        found: dict[str, dict[str, Any]] = {}
        cards, _ = await query_cards(self._jmap, {"kind": "group"}, jscontact.GROUP_PROPERTIES[:-1])
        for card in cards:
            name = jscontact.display_name(card)
            if not jscontact.is_group(card) or not isinstance(card.get("id"), str):
                continue
            # Several groups with one name: a writable one, then the first by id, stably.
            if name in wanted and (name not in found or self._rank(card) < self._rank(found[name])):
                found[name] = card
        self._groups = {name: str(card["id"]) for name, card in found.items()}
        return dict(self._groups)

    async def create_group(self, name: str) -> str:
        card = jscontact.new_group(uids.new_uid(), name, self.book_id)
        result = await cardset.send(self._jmap, {"g": card}, {})
        created = result.created.get("g")
        if not isinstance(created, dict) or not isinstance(created.get("id"), str):
            raise ContactsError(
                f"ContactCard/set: group {name!r} not created: "
                + cardset.error_text(result.not_created.get("g"))
            )
        group_id = str(created["id"])
        log.info("created contact group", extra={"fields": {"group": name}})
        self._groups[name] = group_id
        return group_id

    # -- a pass -------------------------------------------------------------------

    async def lookup(self, wants: Sequence[Want]) -> Lookup:
        out = Lookup()
        if not wants:
            return out
        addresses = {w.address for w in wants}
        filters = any_of_chunks([{"email": jscontact.email_phrase(a)} for a in sorted(addresses)])
        group_get = Call(
            "ContactCard/get",
            {"ids": sorted(self._groups.values()), "properties": list(jscontact.GROUP_PROPERTIES)},
            "groups",
        )
        # Whole cards: a contact Mailroom made is deleted by an undo only if it
        # holds nothing else (``Known.pristine``). The groups' members ride
        # along with the first query.
        cards, resp = await query_cards(
            self._jmap, filters[0], None, group_get if self._groups else None
        )
        for filter_ in filters[1:]:
            cards += (await query_cards(self._jmap, filter_, None))[0]
        if resp is None and self._groups:
            resp = await self._jmap.request([group_get])
        members = self._group_members(resp)

        found: dict[str, list[dict[str, Any]]] = {}
        for card in cards:
            if jscontact.is_group(card) or not isinstance(card.get("id"), str):
                continue
            # The server's match is a text match: the exact address is confirmed here.
            for address in jscontact.emails(card) & addresses:
                found.setdefault(address, []).append(card)
        self._cards = {}
        for want in wants:
            self._judge(want, sorted(found.get(want.address, []), key=self._rank), members, out)
        return out

    def _judge(
        self,
        want: Want,
        matches: list[dict[str, Any]],
        members: dict[str, list[str]],
        out: Lookup,
    ) -> None:
        """What to do with one sender's contact: its cards, best first."""
        if not matches:
            out.known[want.address] = Known(want, None, ContactAction.CREATE, frozenset())
            return
        match = self._cards[want.address] = matches[0]
        if not all(jscontact.uid(card) for card in matches):
            out.failed[want.address] = ContactsError(
                f"a contact card of {want.address} has no uid: cannot join groups"
            )
            return
        patch = jscontact.fill_patch(match, want.address, want.name, want.kind)
        if patch and not self._writable(match):
            log.info(
                "contact is in a read-only address book: its empty fields are left empty",
                extra={"fields": {"sender": want.address}},
            )
            patch = {}
        action = ContactAction.FILL if patch else ContactAction.KEEP
        twins = tuple(
            Twin(jscontact.uid(c), _groups_of(members, jscontact.uid(c)))
            for c in matches[1:]
            if not uids.same(jscontact.uid(c), jscontact.uid(match))
        )
        uid = jscontact.uid(match)
        out.known[want.address] = Known(
            want,
            uid,
            action,
            _groups_of(members, uid),
            twins,
            pristine=jscontact.pristine(match, want.address, want.name, want.kind, want.fills),
        )

    def _group_members(self, resp: Responses | None) -> dict[str, list[str]]:
        self._group_cards = {}
        if resp is None:
            return {}
        got = resp.get("groups", "ContactCard/get")
        by_id = {c.get("id"): c for c in objects(got, "ContactCard/get")}
        out: dict[str, list[str]] = {}
        for name, group_id in list(self._groups.items()):
            card = by_id.get(group_id)
            if card is None or not jscontact.is_group(card):
                # Deleted meanwhile: only the categories that need it fail.
                self._groups.pop(name, None)
                log.warning("contact group missing", extra={"fields": {"group": name}})
                continue
            self._group_cards[group_id] = card
            out[name] = jscontact.members(card)
        return out


def _groups_of(members: Mapping[str, list[str]], uid: str) -> frozenset[str]:
    return frozenset(g for g, keys in members.items() if uids.is_member(keys, uid))


def _book(raw: Mapping[str, Any]) -> AddressBook | None:
    book_id = raw.get("id")
    if not isinstance(book_id, str) or not book_id:
        return None
    rights = raw.get("myRights")
    # Rights not given: assume writable and let the server say otherwise.
    writable = not isinstance(rights, dict) or rights.get("mayWrite") is not False
    name = raw.get("name")
    return AddressBook(
        book_id, name if isinstance(name, str) else "", raw.get("isDefault") is True, writable
    )
