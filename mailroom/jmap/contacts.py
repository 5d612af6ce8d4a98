"""The contact book over JMAP Contacts (RFC 9610), with the API token alone.

A pass costs one request to read (every sender's contact and every managed
group's members) and one ``ContactCard/set`` to write (new contacts, filled
fields and every membership change). Membership is a patch of one key
(``members/<uid>: true|null``): no read-modify-write, so no 412 races.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mailroom.contacts.book import (
    Change,
    ContactAction,
    ContactsBackend,
    ContactsError,
    GroupMissingError,
    Known,
    Lookup,
    Want,
)
from mailroom.jmap import jscontact
from mailroom.jmap.client import Call, JmapClient, Responses, any_of, ref
from mailroom.jmap.errors import JmapError, JmapProtocolError
from mailroom.jmap.session import CONTACTS

log = logging.getLogger(__name__)

MAX_QUERY_PAGES = 100  # 100 pages of contacts for one pass: past that the server is lying


class JmapContactBook:
    backend = ContactsBackend.JMAP

    def __init__(self, jmap: JmapClient) -> None:
        self._jmap = jmap
        self._groups: dict[str, str] = {}  # name -> ContactCard id
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
        books = [b for b in _objects(got, "AddressBook/get") if isinstance(b.get("id"), str)]
        if not books:
            raise ContactsError("JMAP contacts: the account has no address book")
        # The default book, else the first by id: where new contacts go.
        books.sort(key=lambda b: (b.get("isDefault") is not True, str(b["id"])))
        self._book_id = str(books[0]["id"])
        name = books[0].get("name")
        label = name if isinstance(name, str) and name else self._book_id
        return f"JMAP contacts (RFC 9610), address book {label!r}"

    @property
    def book_id(self) -> str:
        if self._book_id is None:
            raise RuntimeError("JmapContactBook.open() has not run")
        return self._book_id

    async def find_groups(self, names: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(names))
        found: dict[str, str] = {}
        cards = await self._query({"kind": "group"}, jscontact.GROUP_PROPERTIES[:-1])
        for card in cards:
            name = jscontact.display_name(card)
            card_id = card.get("id")
            # Several groups with one name: take the first by id, stably.
            if (
                jscontact.is_group(card)
                and isinstance(card_id, str)
                and name in wanted
                and (name not in found or card_id < found[name])
            ):
                found[name] = card_id
        self._groups = found
        return dict(found)

    async def create_group(self, name: str) -> str:
        card = jscontact.new_group(f"urn:uuid:{uuid.uuid4()}", name, self.book_id)
        result = await self._set({"create": {"g": card}})
        created = _dict(result.get("created")).get("g")
        if "g" in _dict(result.get("notCreated")) or not isinstance(_dict(created).get("id"), str):
            raise ContactsError(
                f"ContactCard/set: group {name!r} not created: "
                + _set_error_text(_dict(result.get("notCreated")).get("g"))
            )
        group_id = str(_dict(created)["id"])
        log.info("created contact group", extra={"fields": {"group": name}})
        self._groups[name] = group_id
        return group_id

    # -- a pass -------------------------------------------------------------------

    async def lookup(self, wants: Sequence[Want]) -> Lookup:
        out = Lookup()
        if not wants:
            return out
        addresses = {w.address for w in wants}
        filter_ = any_of([{"email": a} for a in sorted(addresses)])
        group_get = Call(
            "ContactCard/get",
            {"ids": sorted(self._groups.values()), "properties": list(jscontact.GROUP_PROPERTIES)},
            "groups",
        )
        cards, resp = await self._query_with(
            filter_, jscontact.CARD_PROPERTIES, group_get if self._groups else None
        )
        if resp is None and self._groups:
            resp = await self._jmap.request([group_get])
        members = self._group_members(resp)

        found: dict[str, dict[str, Any]] = {}
        for card in cards:
            card_id = card.get("id")
            if jscontact.is_group(card) or not isinstance(card_id, str):
                continue
            # The server's match is a text match: the exact address is confirmed here.
            for address in jscontact.emails(card) & addresses:
                current = found.get(address)
                if current is None or card_id < str(current["id"]):
                    found[address] = card
        self._cards = found
        for want in wants:
            match = found.get(want.address)
            if match is None:
                out.known[want.address] = Known(want, None, ContactAction.CREATE, frozenset())
                continue
            card_uid = jscontact.uid(match)
            if not card_uid:
                out.failed[want.address] = ContactsError(
                    f"the contact card of {want.address} has no uid: cannot join groups"
                )
                continue
            patch = jscontact.fill_patch(match, want.address, want.name, want.kind)
            action = ContactAction.FILL if patch else ContactAction.KEEP
            groups = frozenset(g for g, uids in members.items() if card_uid in uids)
            out.known[want.address] = Known(want, card_uid, action, groups)
        return out

    def _group_members(self, resp: Responses | None) -> dict[str, set[str]]:
        if resp is None:
            return {}
        got = resp.get("groups", "ContactCard/get")
        by_id = {c.get("id"): c for c in _objects(got, "ContactCard/get")}
        out: dict[str, set[str]] = {}
        for name, group_id in list(self._groups.items()):
            card = by_id.get(group_id)
            if card is None or not jscontact.is_group(card):
                # Deleted meanwhile: only the categories that need it fail.
                self._groups.pop(name, None)
                log.warning("contact group missing", extra={"fields": {"group": name}})
                continue
            out[name] = jscontact.members(card)
        return out

    async def apply(self, changes: Sequence[Change]) -> dict[str, Exception]:
        """One ContactCard/set: new contacts, filled fields, every membership change."""
        failed: dict[str, Exception] = {}
        plan = _SetPlan()
        for change in changes:
            try:
                plan.add(change, self._writes(change))
            except Exception as exc:  # this sender's only: the others go on
                failed[change.address] = exc
        if not plan.create and not plan.update:
            return failed
        args: dict[str, Any] = {}
        if plan.create:
            args["create"] = plan.create
        if plan.update:
            args["update"] = plan.update
        result = await self._set(args)

        not_created = _dict(result.get("notCreated"))
        created = _dict(result.get("created"))
        for key, address in plan.creation.items():
            if key in not_created or key not in created:
                failed.setdefault(
                    address,
                    ContactsError(f"contact not created: {_set_error_text(not_created.get(key))}"),
                )
        group_names = {v: k for k, v in self._groups.items()}
        not_updated = _dict(result.get("notUpdated"))
        updated = _dict(result.get("updated"))
        for card_id, addresses in plan.updating.items():
            if card_id not in not_updated and card_id in updated:
                continue
            err = _dict(not_updated.get(card_id))
            named = group_names.get(card_id)
            error: Exception
            if named is not None and err.get("type") == "notFound":
                error = GroupMissingError(f"contact group {named!r} is missing", named)
            else:
                what = f"contact group {named!r}" if named else "contact"
                error = ContactsError(f"{what} not updated: {_set_error_text(err)}")
            for address in addresses:
                failed.setdefault(address, error)
        await self._forget_uncreated(failed, plan, created)
        return failed

    def _writes(self, change: Change) -> _Writes:
        """One sender's part of the ContactCard/set (raises before adding anything)."""
        want = change.known.want
        writes = _Writes()
        if change.known.action is ContactAction.CREATE:
            writes.uid = f"urn:uuid:{uuid.uuid4()}"
            writes.card = jscontact.new_card(
                writes.uid, want.address, want.name, want.kind, self.book_id
            )
        else:
            writes.uid = str(change.known.uid)
            if change.known.action is ContactAction.FILL:
                card = self._cards[want.address]
                patch = jscontact.fill_patch(card, want.address, want.name, want.kind)
                writes.patches[str(card["id"])] = patch
        for group, value in (*((g, True) for g in change.join), *((g, None) for g in change.leave)):
            group_id = self._groups.get(group)
            if group_id is None:
                raise GroupMissingError(f"contact group {group!r} is missing", group)
            writes.patches.setdefault(group_id, {})[jscontact.member_path(writes.uid)] = value
        return writes

    async def _forget_uncreated(
        self, failed: Mapping[str, Exception], plan: _SetPlan, created: Mapping[str, Any]
    ) -> None:
        """A contact that was not created must not stay a member of a group.

        Membership is keyed by uid, so the group patch may have landed without
        its contact. Rare; best effort, and the next pass plans it again anyway.
        """
        dangling: dict[str, dict[str, Any]] = {}
        for key, address in plan.creation.items():
            if key in created or address not in failed:
                continue
            path = jscontact.member_path(plan.uids[address])
            for group_id, patch in plan.update.items():
                if patch.get(path) is True:
                    dangling.setdefault(group_id, {})[path] = None
        if not dangling:
            return
        try:
            await self._set({"update": dangling})
        except (JmapError, ContactsError) as exc:
            log.warning("could not undo a membership", extra={"fields": {"error": str(exc)}})

    # -- plumbing -------------------------------------------------------------------

    async def _set(self, args: dict[str, Any]) -> dict[str, Any]:
        resp = await self._jmap.request([Call("ContactCard/set", args, "s")])
        return resp.get("s", "ContactCard/set")

    async def _query(
        self, filter_: Mapping[str, Any], properties: Sequence[str]
    ) -> list[dict[str, Any]]:
        cards, _ = await self._query_with(filter_, properties, None)
        return cards

    async def _query_with(
        self, filter_: Mapping[str, Any], properties: Sequence[str], extra: Call | None
    ) -> tuple[list[dict[str, Any]], Responses | None]:
        """Every card matching ``filter_``; ``extra`` rides in the first request if it fits.

        Returns the cards and the first request's responses (None if ``extra``
        did not fit and was not sent).
        """
        room = self._jmap.session.max_calls_in_request
        limit = self._jmap.page_size()
        out: list[dict[str, Any]] = []
        first: Responses | None = None
        position = 0
        for _ in range(MAX_QUERY_PAGES):
            query = Call(
                "ContactCard/query",
                {"filter": filter_, "position": position, "limit": limit},
                "q",
            )
            with_extra = extra is not None and position == 0 and room >= 3
            if room >= 2:
                calls = [
                    query,
                    Call(
                        "ContactCard/get",
                        {
                            "#ids": ref("q", "ContactCard/query", "/ids"),
                            "properties": list(properties),
                        },
                        "g",
                    ),
                ]
                if with_extra and extra is not None:
                    calls.append(extra)
                resp = await self._jmap.request(calls)
                ids = _ids(resp.get("q", "ContactCard/query"))
                cards = _objects(resp.get("g", "ContactCard/get"), "ContactCard/get")
            else:
                resp = await self._jmap.request([query])
                ids = _ids(resp.get("q", "ContactCard/query"))
                cards = []
                if ids:
                    got = await self._jmap.request(
                        [Call("ContactCard/get", {"ids": ids, "properties": list(properties)}, "g")]
                    )
                    cards = _objects(got.get("g", "ContactCard/get"), "ContactCard/get")
            if position == 0 and with_extra:
                first = resp
            out.extend(cards)
            applied = _applied_limit(resp.get("q", "ContactCard/query"), limit)
            if len(ids) < applied or not ids:
                return out, first
            position += len(ids)
        raise JmapProtocolError(f"ContactCard/query: more than {MAX_QUERY_PAGES} pages")


@dataclass
class _Writes:
    uid: str = ""
    card: dict[str, Any] | None = None  # a new contact
    patches: dict[str, dict[str, Any]] = field(default_factory=dict)  # card id -> patch


@dataclass
class _SetPlan:
    """One ContactCard/set for a whole pass, and which sender each part is for."""

    create: dict[str, Any] = field(default_factory=dict)
    update: dict[str, dict[str, Any]] = field(default_factory=dict)
    creation: dict[str, str] = field(default_factory=dict)  # creation id -> address
    updating: dict[str, set[str]] = field(default_factory=dict)  # card id -> addresses
    uids: dict[str, str] = field(default_factory=dict)  # address -> uid

    def add(self, change: Change, writes: _Writes) -> None:
        address = change.address
        self.uids[address] = writes.uid
        if writes.card is not None:
            key = f"c{len(self.create)}"
            self.create[key] = writes.card
            self.creation[key] = address
        for card_id, patch in writes.patches.items():
            self.update.setdefault(card_id, {}).update(patch)
            self.updating.setdefault(card_id, set()).add(address)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _objects(result: Mapping[str, Any], what: str) -> list[dict[str, Any]]:
    items = result.get("list")
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise JmapProtocolError(f"{what}: 'list' is not a list of objects")
    return items


def _ids(query: Mapping[str, Any]) -> list[str]:
    ids = query.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise JmapProtocolError("ContactCard/query: ids is not a list of strings")
    return ids


def _applied_limit(query: Mapping[str, Any], asked: int) -> int:
    limit = query.get("limit")
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < asked:
        return limit
    return asked


def _set_error_text(err: Any) -> str:
    err = _dict(err)
    text = str(err.get("type", "no reason given"))
    description = err.get("description")
    if isinstance(description, str) and description:
        text += f" ({description[:200]})"
    return text
