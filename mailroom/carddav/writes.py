"""Writing contacts over CardDAV: one PUT per new or filled contact (a few at
a time), then one PUT per changed group carrying every sender's moves, joins
before leaves; a group edit another writer beat (412) is read again and
re-applied, a few times with a short pause, so concurrent edits are never
lost. Deletions are conditional: a contact changed since is kept.

A mixin of :class:`~mailroom.carddav.book.CardDavBook`, which holds what its
last lookup found."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mailroom.carddav import vcard
from mailroom.carddav.client import Card, CardDavClient
from mailroom.carddav.errors import CardDavAuthError, CardDavError, PreconditionFailed
from mailroom.carddav.vcard import VCardError
from mailroom.contacts.book import (
    Change,
    ContactAction,
    ContactKept,
    ContactsError,
    GroupMissingError,
)
from mailroom.net import Sleep

log = logging.getLogger(__name__)

EDIT_ATTEMPTS = 5
CONTACT_WRITES = 4  # concurrent PUTs of contacts; within the API client's connections


@dataclass(frozen=True)
class Contact:
    card: Card
    uid: str


class CardDavWrites:
    """``apply``: the contact book's writes, from the cards its lookup read."""

    _client: CardDavClient
    _sleep: Sleep
    _backoff: Callable[[int], float]
    _group_hrefs: dict[str, str]  # name -> href
    _group_cards: dict[str, Card]  # name -> card, as last read or written
    _contacts: dict[str, Contact]  # address -> contact, from the last lookup

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
