"""Writing contacts over JMAP Contacts: one ``ContactCard/set`` for a pass's new
contacts, filled fields and membership patches (more only past the session's
limits), and the repair of a membership a server refused.

A mixin of :class:`~mailroom.jmap.contacts.JmapContactBook`, which holds what
its last lookup found."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from mailroom.contacts import uids
from mailroom.contacts.book import Change, ContactAction, ContactsError, GroupMissingError
from mailroom.jmap import cardset, jscontact
from mailroom.jmap.cardset import CardSetPlan, CardSetResult, Writes
from mailroom.jmap.client import JmapClient
from mailroom.jmap.errors import JmapError

log = logging.getLogger(__name__)


class ContactWrites:
    """``apply``: the contact book's writes, from the cards its lookup read."""

    _jmap: JmapClient
    _groups: dict[str, str]  # name -> ContactCard id
    _group_cards: dict[str, dict[str, Any]]  # id -> group card, last lookup
    _cards: dict[str, dict[str, Any]]  # address -> card, from the last lookup

    @property
    def book_id(self) -> str:
        raise NotImplementedError

    async def apply(self, changes: Sequence[Change]) -> dict[str, Exception]:
        """New contacts, filled fields and every membership change, in one request."""
        failed: dict[str, Exception] = {}
        plan = CardSetPlan()
        for change in changes:
            try:
                plan.add(change.address, self._writes(change))
            except Exception as exc:  # this sender's only: the others go on
                failed[change.address] = exc
        if plan.empty:
            return failed
        result = await cardset.send(self._jmap, plan.create, plan.update, list(plan.destroy))

        for key, address in plan.creation.items():
            if key in result.not_created or key not in result.created:
                failed.setdefault(
                    address,
                    ContactsError(
                        f"contact not created: {cardset.error_text(result.not_created.get(key))}"
                    ),
                )
        group_names = {v: k for k, v in self._groups.items()}
        for card_id, addresses in plan.updating.items():
            if card_id not in result.not_updated and card_id in result.updated:
                continue
            err = result.not_updated.get(card_id, {})
            named = group_names.get(card_id)
            error: Exception
            if named is not None and err.get("type") == "notFound":
                error = GroupMissingError(f"contact group {named!r} is missing", named)
            else:
                what = f"contact group {named!r}" if named else "contact"
                error = ContactsError(f"{what} not updated: {cardset.error_text(err)}")
            for address in addresses:
                failed.setdefault(address, error)
        await self._repair(failed, plan, result)
        for card_id, address in plan.destroy.items():
            refusal = result.not_destroyed.get(card_id, {})
            if card_id not in result.destroyed and refusal.get("type") != "notFound":
                # Not "changed since" (the lookup just read it whole): a refusal,
                # so the undo stops part-way and its next run deletes it.
                why = cardset.error_text(refusal)
                failed.setdefault(address, ContactsError(f"contact not deleted: {why}"))
        return failed

    def _writes(self, change: Change) -> Writes:
        """One sender's part of the ContactCard/set (raises before adding anything)."""
        want = change.known.want
        writes = Writes()
        if change.known.action is ContactAction.CREATE:
            writes.uid = change.new_uid
            writes.card = jscontact.new_card(
                writes.uid, want.address, want.name, want.kind, self.book_id
            )
        else:
            writes.uid = str(change.known.uid)
            if change.known.action is ContactAction.FILL:
                card = self._cards[want.address]
                patch = jscontact.fill_patch(card, want.address, want.name, want.kind)
                writes.patches[str(card["id"])] = patch
        for uid, join, leave in change.moves():
            self._membership(writes, uid or writes.uid, join, leave)
        if change.destroy and change.known.pristine:
            writes.destroy = str(self._cards[want.address]["id"])
        return writes

    def _membership(
        self, writes: Writes, uid: str, join: Sequence[str], leave: Sequence[str]
    ) -> None:
        for group in join:
            group_id = self._group_id(group)
            card = self._group_cards.get(group_id, {})
            if uids.is_member(jscontact.members(card), uid):
                continue  # already there under another spelling of its uid
            patch = writes.patches.setdefault(group_id, {})
            if card and not jscontact.has_members_map(card):
                patch.setdefault("members", {})[uid] = True
            else:
                patch[jscontact.member_path(uid)] = True
        for group in leave:
            group_id = self._group_id(group)
            card = self._group_cards.get(group_id, {})
            keys = uids.keys_for(jscontact.members(card), uid) or [uid]
            # Every spelling present goes: a null for another one would be a no-op.
            for key in keys:
                writes.patches.setdefault(group_id, {})[jscontact.member_path(key)] = None

    def _group_id(self, group: str) -> str:
        group_id = self._groups.get(group)
        if group_id is None:
            raise GroupMissingError(f"contact group {group!r} is missing", group)
        return group_id

    async def _repair(
        self, failed: Mapping[str, Exception], plan: CardSetPlan, result: CardSetResult
    ) -> None:
        """Undo what a failed sender's partial write would leave wrong.

        A contact that was not created must not stay a member of a group (the
        group patch may have landed without it); a contact whose new group
        refused it keeps the groups it was leaving, so it is never in none.
        Rare; best effort, and the next pass plans the sender again anyway.
        """
        fix: dict[str, dict[str, Any]] = {}
        uncreated = {a for k, a in plan.creation.items() if k not in result.created}
        for address, patches in plan.parts.items():
            if address not in failed:
                continue
            joins_refused = any(
                card_id not in result.updated
                for card_id, patch in patches.items()
                if any(v is True or isinstance(v, dict) for v in patch.values())
            )
            uid = plan.uids[address]
            for card_id, patch in patches.items():
                if card_id not in result.updated:
                    continue
                for path, value in patch.items():
                    if address in uncreated and (value is True or isinstance(value, dict)):
                        fix.setdefault(card_id, {})[jscontact.member_path(uid)] = None
                    elif value is None and joins_refused and address not in uncreated:
                        fix.setdefault(card_id, {})[path] = True
        if not fix:
            return
        try:
            await cardset.send(self._jmap, {}, fix)
        except (JmapError, ContactsError) as exc:
            log.warning("could not undo a membership", extra={"fields": {"error": str(exc)}})
