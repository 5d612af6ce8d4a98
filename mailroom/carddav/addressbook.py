"""Contacts and contact groups on top of the CardDAV client.

Group edits are read-modify-write with ``If-Match``; when another writer got
there first (412) the group is read again and the edit re-applied, a few
times with a short pause, so concurrent edits are never lost.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mailroom.carddav import vcard
from mailroom.carddav.client import Card, CardDavClient, CardDavError, PreconditionFailed
from mailroom.carddav.vcard import ContactKind, VCardError
from mailroom.net import Sleep

log = logging.getLogger(__name__)

EDIT_ATTEMPTS = 5


class GroupMissingError(CardDavError):
    """A contact group Mailroom manages disappeared (deleted by the user?)."""

    def __init__(self, message: str, group: str | None = None) -> None:
        super().__init__(message)
        self.group = group


@dataclass(frozen=True)
class Contact:
    card: Card
    uid: str


class AddressBook:
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
        # membership lookup needs no extra GET. A stale one costs a 412 + re-read.
        self._group_cards: dict[str, Card] = {}

    @property
    def group_hrefs(self) -> dict[str, str]:
        return dict(self._group_hrefs)

    async def find_groups(self, names: Iterable[str]) -> dict[str, str]:
        """The group cards named ``names`` that exist (name -> href); writes nothing.

        Mailroom works with exactly these from now on: a group missing here
        fails its category's senders until ``mailroom setup --apply`` makes it.
        """
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
        group_uid = str(uuid.uuid4())
        card = await self._client.create(vcard.new_group(group_uid, name), group_uid)
        log.info("created contact group", extra={"fields": {"group": name}})
        self._group_hrefs[name] = card.href
        return card.href

    async def ensure_groups(self, names: Iterable[str]) -> dict[str, str]:
        """Find (or create) a group card for each name; returns name -> href."""
        wanted = list(dict.fromkeys(names))
        found = await self.find_groups(wanted)
        for name in wanted:
            if name not in found:
                found[name] = await self.create_group(name)
        return dict(found)

    async def find_contact(self, address: str) -> Contact | None:
        """The contact card for ``address`` (not a group), or None."""
        matches = []
        for card in await self._client.search("EMAIL", [address]):
            parsed = vcard.parse(card.text, card.href)
            # The server's match is a hint; confirm the exact address here.
            if not vcard.is_group(parsed) and address.lower() in vcard.emails(parsed):
                matches.append(Contact(card, vcard.uid(parsed)))
        matches.sort(key=lambda c: c.card.href)
        return matches[0] if matches else None

    async def upsert_contact(
        self, address: str, name: str, kind: ContactKind, existing: Contact | None
    ) -> Contact:
        """Create the contact, or fill its empty fields (never overwriting)."""
        if existing is None:
            contact_uid = str(uuid.uuid4())
            card = await self._client.create(
                vcard.new_contact(contact_uid, address, name, kind), contact_uid
            )
            return Contact(card, contact_uid)
        card = existing.card
        for attempt in range(EDIT_ATTEMPTS):
            new_text = vcard.fill_contact(card.text, address, name, kind)
            if new_text is None:
                return Contact(card, existing.uid)
            try:
                return Contact(await self._client.update(card, new_text), existing.uid)
            except PreconditionFailed:
                card = await self._reread(card.href, attempt, "contact")
        raise CardDavError(f"contact kept changing under us ({EDIT_ATTEMPTS} attempts)")

    async def groups_of(self, contact_uid: str) -> set[str]:
        """Names of the managed groups the contact is a member of (one request)."""
        cards = await self._client.multiget(list(self._group_hrefs.values()))
        out = set()
        for name, href in list(self._group_hrefs.items()):
            card = cards.get(href)
            if card is None:
                # Deleted meanwhile: nobody is in it, and only the categories
                # that need it fail (they find it missing from group_hrefs).
                self._group_hrefs.pop(name, None)
                log.warning("contact group missing", extra={"fields": {"group": name}})
                continue
            self._group_cards[name] = card
            if contact_uid in vcard.members(vcard.parse(card.text, f"group {name!r}")):
                out.add(name)
        return out

    async def add_member(self, group: str, contact_uid: str) -> bool:
        return await self._edit_group(group, lambda text: vcard.with_member(text, contact_uid))

    async def remove_member(self, group: str, contact_uid: str) -> bool:
        return await self._edit_group(group, lambda text: vcard.without_member(text, contact_uid))

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
                card = await self._reread(href, attempt, f"contact group {group!r}")
                continue
            if written.etag:
                self._group_cards[group] = written
            return True
        raise CardDavError(f"contact group {group!r} kept changing ({EDIT_ATTEMPTS} attempts)")

    async def _reread(self, href: str, attempt: int, what: str) -> Card:
        await self._sleep(self._backoff(attempt))
        card = await self._client.get(href)
        if card is None:
            raise GroupMissingError(f"{what} is gone")
        return card
