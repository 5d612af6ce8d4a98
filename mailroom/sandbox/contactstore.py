"""An in-memory CardDAV address book: the subset Fastmail offers and Mailroom uses.

Cards are kept byte for byte as written (JMAP writes keep vCard 4.0, see
``vcard_versions``) and read over CardDAV as vCard 3.0 unless the reader asks
for 4.0. ETags change on every write and ``If-Match``/``If-None-Match`` are
enforced (412), as on Fastmail and Cyrus. The account has two address books,
as a Fastmail account with a shared book does: the default one, which
CardDAV serves, and a read-only one that only JMAP shows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET

from mailroom.sandbox import cards as vcard
from mailroom.sandbox import vcard_versions
from mailroom.sandbox.cards import CARD, DAV, CardError, tag
from mailroom.sandbox.davxml import card_response, matches, multistatus, response

DEFAULT_BOOK = "default"
SHARED_BOOK = "shared"  # read-only: written by somebody else


@dataclass(frozen=True)
class Book:
    id: str
    name: str
    writable: bool


BOOKS = {
    SHARED_BOOK: Book(SHARED_BOOK, "Shared", writable=False),
    DEFAULT_BOOK: Book(DEFAULT_BOOK, "Personal", writable=True),
}


@dataclass
class StoredCard:
    etag: str
    text: str
    book: str = DEFAULT_BOOK


class DavError(Exception):
    def __init__(self, status: int, reason: str = "") -> None:
        super().__init__(reason)
        self.status = status


class ContactStore:
    def __init__(self, username: str) -> None:
        self.username = username
        self.lock = threading.RLock()
        self.cards: dict[str, StoredCard] = {}  # name ("x.vcf") -> card
        self._etags = 0
        # Test hook: runs before a PUT is applied, e.g. to make a concurrent edit.
        self.before_put: Callable[[str], None] | None = None
        self.blind_writes = 0  # PUTs over an existing card without If-Match
        # A per-contact fault: writes of a card with one of these addresses are
        # refused (CardDAV 507, JMAP "forbidden").
        self.refuse_addresses: set[str] = set()
        # Another per-card fault: writes of the groups with these names are refused.
        self.refuse_groups: set[str] = set()

    def refuses(self, card: object) -> bool:
        """Whether the fault switches refuse writing ``card`` (a parsed vCard)."""
        if vcard.emails(card) & self.refuse_addresses:
            return True
        return vcard.is_group(card) and vcard.display_name(card) in self.refuse_groups

    @property
    def etag_counter(self) -> int:
        return self._etags

    @property
    def principal_path(self) -> str:
        return f"/dav/principals/user/{self.username}/"

    @property
    def home_path(self) -> str:
        return f"/dav/addressbooks/user/{self.username}/"

    @property
    def book_path(self) -> str:
        return self.home_path + "Default/"

    @property
    def shared_path(self) -> str:
        # Listed before Default, as a shared book's id often sorts.
        return self.home_path + "0c1d2e3f-shared/"

    def _book_at(self, path: str) -> str:
        if path == self.shared_path:
            return SHARED_BOOK
        if path == self.book_path:
            return DEFAULT_BOOK
        raise DavError(404)

    def _etag(self) -> str:
        self._etags += 1
        return f'"{self._etags}"'

    # -- direct helpers for tests ---------------------------------------------

    def write(self, name: str, text: str, book: str = DEFAULT_BOOK) -> str:
        """Store a card as another client would (new ETag)."""
        with self.lock:
            etag = self._etag()
            self.cards[name] = StoredCard(etag, text, book)
            return etag

    def parsed(self) -> list[tuple[str, object]]:
        """Every card of every book, as a vCard 3.0 reader sees it."""
        with self.lock:
            items = list(self.cards.items())
        return [(name, vcard.parse(vcard_versions.to_v3_text(c.text), name)) for name, c in items]

    def dav_text(self, name: str) -> str:
        """The stored card as a CardDAV client reads it (vCard 3.0)."""
        with self.lock:
            return vcard_versions.to_v3_text(self.cards[name].text)

    def _dav_cards(self, book: str = DEFAULT_BOOK) -> dict[str, StoredCard]:
        return {n: c for n, c in self.cards.items() if c.book == book}

    def group_members(self, group_name: str) -> set[str]:
        """UIDs in the group called ``group_name`` (empty if there is none)."""
        for _, card in self.parsed():
            if vcard.is_group(card) and vcard.display_name(card) == group_name:
                return vcard.members(card)
        return set()

    def groups_named(self, group_name: str) -> int:
        return sum(
            1
            for _, card in self.parsed()
            if vcard.is_group(card) and vcard.display_name(card) == group_name
        )

    def contact_uid(self, address: str) -> str | None:
        for _, card in self.parsed():
            if not vcard.is_group(card) and address.lower() in vcard.emails(card):
                return vcard.uid(card)
        return None

    def contact_text(self, address: str) -> str | None:
        """The contact's card as a vCard 3.0 reader gets it."""
        with self.lock:
            for card in self.cards.values():
                text = vcard_versions.to_v3_text(card.text)
                parsed = vcard.parse(text)
                if not vcard.is_group(parsed) and address.lower() in vcard.emails(parsed):
                    return text
        return None

    def groups_of_address(self, address: str) -> set[str]:
        uid = self.contact_uid(address)
        return {
            vcard.display_name(card)
            for _, card in self.parsed()
            if uid is not None and vcard.is_group(card) and uid in vcard.members(card)
        }

    # -- DAV methods -----------------------------------------------------------

    def card_name(self, path: str) -> str:
        if not path.startswith(self.book_path) or "/" in path[len(self.book_path) :]:
            raise DavError(404)
        name = path[len(self.book_path) :]
        if not name:
            raise DavError(405)
        return name

    def propfind(self, path: str, depth: str) -> str:
        if path in (self.principal_path, "/.well-known/carddav"):
            return multistatus(
                [
                    response(
                        self.principal_path,
                        f"<d:current-user-principal><d:href>{self.principal_path}</d:href>"
                        "</d:current-user-principal>"
                        f"<c:addressbook-home-set><d:href>{self.home_path}</d:href>"
                        "</c:addressbook-home-set>",
                    )
                ]
            )
        if path == self.home_path:
            items = [response(self.home_path, "<d:resourcetype><d:collection/></d:resourcetype>")]
            if depth != "0":
                for book_path, book in (
                    (self.shared_path, BOOKS[SHARED_BOOK]),
                    (self.book_path, BOOKS[DEFAULT_BOOK]),
                ):
                    writes = ["write", "write-content", "bind"] if book.writable else []
                    rights = ["read", *writes]
                    privileges = "".join(f"<d:privilege><d:{r}/></d:privilege>" for r in rights)
                    items.append(
                        response(
                            book_path,
                            "<d:resourcetype><d:collection/><c:addressbook/></d:resourcetype>"
                            f"<d:displayname>{book.name}</d:displayname>"
                            "<d:current-user-privilege-set>"
                            f"{privileges}</d:current-user-privilege-set>",
                        )
                    )
            return multistatus(items)
        if path == self.book_path:
            return multistatus(
                [
                    response(
                        self.book_path,
                        "<d:resourcetype><d:collection/><c:addressbook/></d:resourcetype>",
                    )
                ]
            )
        raise DavError(404)

    def report(self, path: str, body: bytes) -> str:
        book = self._book_at(path)
        try:
            root = SafeET.fromstring(body)
        except Exception:
            raise DavError(400, "malformed XML") from None
        with self.lock:
            cards = self._dav_cards(book)
            if root.tag == tag(CARD, "addressbook-multiget"):
                out = []
                for href in root.findall(tag(DAV, "href")):
                    name = (href.text or "").rsplit("/", 1)[-1]
                    card = cards.get(name)
                    if card is None:
                        out.append(
                            f"<d:response><d:href>{escape(href.text or '')}</d:href>"
                            "<d:status>HTTP/1.1 404 Not Found</d:status></d:response>"
                        )
                    else:
                        out.append(card_response(path + name, card.etag, card.text))
                return multistatus(out)
            if root.tag == tag(CARD, "addressbook-query"):
                flt = root.find(tag(CARD, "filter"))
                return multistatus(
                    [
                        card_response(path + name, card.etag, card.text)
                        for name, card in sorted(cards.items())
                        if flt is None or matches(vcard_versions.to_v3_text(card.text), flt)
                    ]
                )
        raise DavError(400, "unsupported REPORT")

    def get(self, path: str, version: str = "3.0") -> StoredCard:
        """The card as vCard 3.0, or 4.0 when the reader asks for it (``Accept``)."""
        with self.lock:
            card = self._dav_cards().get(self.card_name(path))
            if card is None:
                raise DavError(404)
            if version == "4.0":
                return StoredCard(card.etag, vcard_versions.to_v4_text(card.text))
            return StoredCard(card.etag, vcard_versions.to_v3_text(card.text))

    def put(
        self, path: str, text: str, if_match: str | None, if_none_match: str | None
    ) -> tuple[int, str]:
        name = self.card_name(path)
        if self.before_put is not None:
            self.before_put(name)
        try:
            parsed = vcard.parse(text, name)
        except CardError:
            raise DavError(415, "not a vCard") from None
        if self.refuses(parsed):
            raise DavError(507, "the stand-in was told to refuse this contact (quota)")
        with self.lock:
            existing = self._dav_cards().get(name)
            if if_none_match == "*" and existing is not None:
                raise DavError(412)
            if if_match is not None and (existing is None or existing.etag != if_match):
                raise DavError(412)
            if existing is not None and if_match is None and if_none_match is None:
                self.blind_writes += 1  # what a careful client never does
            etag = self._etag()
            self.cards[name] = StoredCard(etag, text)
            return (204 if existing else 201), etag

    def delete(self, path: str, if_match: str | None) -> None:
        name = self.card_name(path)
        with self.lock:
            existing = self._dav_cards().get(name)
            if existing is None:
                raise DavError(404)
            if if_match is not None and existing.etag != if_match:
                raise DavError(412)
            del self.cards[name]
