"""The contact book over CardDAV: vCards and Apple-style group cards.

A pass reads in two requests whatever its senders need (one search by
address, one multiget of the managed groups) and writes one PUT per new or
filled contact and one PUT per changed group, whatever the number of senders
in it. Group edits are read-modify-write with ``If-Match``; when another
writer got there first (412) the group is read again and the edit re-applied,
a few times with a short pause, so concurrent edits are never lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

from mailroom.carddav import vcard
from mailroom.carddav.client import Card, CardDavClient
from mailroom.carddav.vcard import VCardError
from mailroom.carddav.writes import CardDavWrites, Contact
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
from mailroom.net import Sleep

log = logging.getLogger(__name__)


class CardDavBook(CardDavWrites):
    backend = ContactsBackend.CARDDAV

    def __init__(
        self,
        client: CardDavClient,
        *,
        sleep: Sleep = asyncio.sleep,
        backoff: Callable[[int], float] = lambda attempt: 0.05 * 2**attempt,
    ) -> None:
        self._client = client
        self._sleep = sleep
        self._backoff = backoff
        self._group_hrefs: dict[str, str] = {}
        # Group cards as last read or written, so an edit right after a
        # lookup needs no extra GET. A stale one costs a 412 and a re-read.
        self._group_cards: dict[str, Card] = {}
        # Contacts as the last lookup found them (address -> card).
        self._contacts: dict[str, Contact] = {}

    @property
    def groups(self) -> Mapping[str, str]:
        return dict(self._group_hrefs)

    async def open(self) -> str:
        url = await self._client.discover()
        return f"CardDAV address book {url}"

    async def find_groups(self, names: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(names))
        found: dict[str, str] = {}
        for card in await self._client.search("FN", wanted):
            try:
                parsed = vcard.parse(card.text, card.href)
            except VCardError as exc:
                log.warning("skipping unreadable card", extra={"fields": {"error": str(exc)}})
                continue
            name = vcard.display_name(parsed)
            # Several groups with one name: take the first by href, stably.
            if (
                vcard.is_group(parsed)
                and name in wanted
                and (name not in found or card.href < found[name])
            ):
                found[name] = card.href
        self._group_hrefs = found
        self._group_cards.clear()
        return dict(found)

    async def create_group(self, name: str) -> str:
        group_uid = uids.new_uid()
        card = await self._client.create(vcard.new_group(group_uid, name), group_uid)
        log.info("created contact group", extra={"fields": {"group": name}})
        self._group_hrefs[name] = card.href
        return card.href

    # -- a pass -------------------------------------------------------------------

    async def lookup(self, wants: Sequence[Want]) -> Lookup:
        out = Lookup()
        if not wants:
            return out
        addresses = [w.address for w in wants]
        contacts, unreadable = await self._find_contacts(addresses)
        members = await self._group_members()
        for want in wants:
            if want.address in unreadable:
                problem = unreadable[want.address]
                out.failed[want.address] = ContactsError(
                    f"the contact card of {want.address}: {problem}"
                )
                continue
            found = contacts.get(want.address)
            if not found:
                out.known[want.address] = Known(want, None, ContactAction.CREATE, frozenset())
                continue
            contact = found[0]
            filled = vcard.fill_contact(contact.card.text, want.address, want.name, want.kind)
            action = ContactAction.KEEP if filled is None else ContactAction.FILL
            twins = tuple(
                Twin(c.uid, _groups_of(members, c.uid)) for c in found[1:] if c.uid != contact.uid
            )
            groups = _groups_of(members, contact.uid)
            out.known[want.address] = Known(
                want,
                contact.uid,
                action,
                groups,
                twins,
                pristine=vcard.pristine(
                    vcard.parse(contact.card.text), want.address, want.name, want.kind, want.fills
                ),
            )
        return out

    async def _find_contacts(
        self, addresses: Sequence[str]
    ) -> tuple[dict[str, list[Contact]], dict[str, str]]:
        """Contacts by exact address (one request), and the unreadable cards' errors.

        Every contact with an address is kept (the first by href is the one
        filled): duplicates move with it.
        """
        wanted = set(addresses)
        found: dict[str, list[Contact]] = {}
        unreadable: dict[str, str] = {}
        for card in await self._client.search("EMAIL", addresses):
            try:
                parsed = vcard.parse(card.text, card.href)
                if vcard.is_group(parsed):
                    continue
                card_uid = vcard.uid(parsed)
            except VCardError as exc:
                # Only the senders whose address is on the card, exactly: a
                # broken card for jimbob@x says nothing about bob@x.
                for address in vcard.addresses_in(card.text) & wanted:
                    unreadable[address] = str(exc)
                continue
            # The server's match is a hint; the exact address is confirmed here.
            for address in vcard.emails(parsed) & wanted:
                found.setdefault(address, []).append(Contact(card, card_uid))
        for contacts in found.values():
            contacts.sort(key=lambda c: c.card.href)
        self._contacts = {address: contacts[0] for address, contacts in found.items()}
        return found, unreadable

    async def _group_members(self) -> dict[str, set[str]]:
        """Members of every managed group (one request); drops groups now gone."""
        cards = await self._client.multiget(list(self._group_hrefs.values()))
        out: dict[str, set[str]] = {}
        for name, href in list(self._group_hrefs.items()):
            card = cards.get(href)
            if card is None:
                # Deleted meanwhile: only the categories that need it fail.
                self._group_hrefs.pop(name, None)
                self._group_cards.pop(name, None)
                log.warning("contact group missing", extra={"fields": {"group": name}})
                continue
            self._group_cards[name] = card
            out[name] = vcard.members(vcard.parse(card.text, f"group {name!r}"))
        return out


def _groups_of(members: Mapping[str, set[str]], uid: str) -> frozenset[str]:
    return frozenset(g for g, found in members.items() if uid in found)
