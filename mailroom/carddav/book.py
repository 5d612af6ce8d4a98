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
from dataclasses import dataclass

from mailroom.carddav import vcard
from mailroom.carddav.client import (
    Card,
    CardDavAuthError,
    CardDavClient,
    CardDavError,
    PreconditionFailed,
)
from mailroom.carddav.vcard import VCardError
from mailroom.contacts import uids
from mailroom.contacts.book import (
    Change,
    ContactAction,
    ContactKept,
    ContactsBackend,
    ContactsError,
    GroupMissingError,
    Known,
    Lookup,
    Twin,
    Want,
)
from mailroom.net import Sleep

log = logging.getLogger(__name__)

EDIT_ATTEMPTS = 5
CONTACT_WRITES = 4  # concurrent PUTs of contacts; within the API client's connections


@dataclass(frozen=True)
class Contact:
    card: Card
    uid: str


class CardDavBook:
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

    async def apply(self, changes: Sequence[Change]) -> dict[str, Exception]:
        failed: dict[str, Exception] = {}
        uids_made: dict[str, str] = {}
        # New contacts are one PUT each: a few at a time, so a long link costs
        # round trips / CONTACT_WRITES, not one round trip per sender.
        gate = asyncio.Semaphore(CONTACT_WRITES)
        rejected: list[CardDavAuthError] = []

        async def write(change: Change) -> None:
            async with gate:
                if rejected:
                    return
                try:
                    uids_made[change.address] = await self._write_contact(change)
                except CardDavAuthError as exc:
                    rejected.append(exc)
                except VCardError as exc:
                    failed[change.address] = ContactsError(str(exc))
                except Exception as exc:  # this sender's only: the others go on
                    failed[change.address] = exc

        await asyncio.gather(*(write(c) for c in changes))
        if rejected:
            raise rejected[0]  # the credentials: every sender, the whole pass
        # One PUT per changed group, carrying every sender's moves at once.
        # Joins go first and leaves only after, for the senders whose joins
        # all landed: a failed join never leaves a contact in no group.
        joins: dict[str, dict[str, str]] = {}
        leaves: dict[str, dict[str, str]] = {}
        for change in changes:
            address = change.address
            if address in failed:
                continue
            for uid, join, leave in change.moves():
                for group in join:
                    joins.setdefault(group, {})[uid or uids_made[address]] = address
                for group in leave:
                    leaves.setdefault(group, {})[uid or uids_made[address]] = address
        for phase, edits in (("join", joins), ("leave", leaves)):
            for group, moved in sorted(edits.items()):
                moved = {u: a for u, a in moved.items() if a not in failed}
                if not moved:
                    continue
                add, remove = (moved, {}) if phase == "join" else ({}, moved)
                try:
                    await self._edit_group(group, _members_edit(add, remove))
                except CardDavAuthError:
                    raise
                except Exception as exc:  # this group's senders only
                    error = ContactsError(str(exc)) if isinstance(exc, VCardError) else exc
                    for address in moved.values():
                        failed.setdefault(address, error)
        await self._destroy([c for c in changes if c.destroy and c.address not in failed], failed)
        return failed

    async def _destroy(self, changes: Sequence[Change], failed: dict[str, Exception]) -> None:
        """Delete the contacts of ``changes`` (out of their groups by now), each only
        if its card is still as the lookup read it: a conditional DELETE."""
        for change in changes:
            contact = self._contacts.get(change.address)
            if contact is None or not change.known.pristine:
                continue
            try:
                await self._client.delete(contact.card)
            except CardDavAuthError:
                raise
            except PreconditionFailed:
                failed[change.address] = ContactKept("contact not deleted: it changed since")
            except Exception as exc:  # this sender's only; the undo's next run retries
                failed[change.address] = ContactsError(f"contact not deleted: {exc}")

    async def _write_contact(self, change: Change) -> str:
        """Create the contact, or fill its empty fields (never overwriting); its UID."""
        want = change.known.want
        if change.known.action is ContactAction.CREATE:
            contact_uid = change.new_uid
            await self._client.create(
                vcard.new_contact(contact_uid, want.address, want.name, want.kind), contact_uid
            )
            return contact_uid
        contact = self._contacts[want.address]
        if change.known.action is ContactAction.KEEP:
            return contact.uid
        card = contact.card
        for attempt in range(EDIT_ATTEMPTS):
            new_text = vcard.fill_contact(card.text, want.address, want.name, want.kind)
            if new_text is None:
                return contact.uid
            try:
                await self._client.update(card, new_text)
                return contact.uid
            except PreconditionFailed:
                card = await self._reread(card.href, attempt, "contact")
        raise CardDavError(f"contact kept changing under us ({EDIT_ATTEMPTS} attempts)")

    async def _edit_group(self, group: str, edit: Callable[[str], str | None]) -> bool:
        """Apply ``edit`` to the group card; True if a write happened."""
        href = self._group_hrefs.get(group)
        if href is None:
            raise GroupMissingError(f"contact group {group!r} is missing", group)
        card = self._group_cards.pop(group, None) or await self._client.get(href)
        if card is None:
            raise GroupMissingError(f"contact group {group!r} is missing", group)
        for attempt in range(EDIT_ATTEMPTS):
            new_text = edit(card.text)
            if new_text is None:
                return False
            try:
                written = await self._client.update(card, new_text)
            except PreconditionFailed:
                log.info(
                    "group changed while editing, retrying", extra={"fields": {"group": group}}
                )
                card = await self._reread(href, attempt, f"contact group {group!r}", group)
                continue
            if written.etag:
                self._group_cards[group] = written
            return True
        raise CardDavError(f"contact group {group!r} kept changing ({EDIT_ATTEMPTS} attempts)")

    async def _reread(self, href: str, attempt: int, what: str, group: str | None = None) -> Card:
        await self._sleep(self._backoff(attempt))
        card = await self._client.get(href)
        if card is None:
            if group is None:
                raise ContactsError(f"{what} is gone")
            raise GroupMissingError(f"{what} is gone", group)
        return card


def _members_edit(add: Iterable[str], remove: Iterable[str]) -> Callable[[str], str | None]:
    return lambda text: vcard.edit_members(text, add, remove)


def _groups_of(members: Mapping[str, set[str]], uid: str) -> frozenset[str]:
    return frozenset(g for g, found in members.items() if uid in found)
