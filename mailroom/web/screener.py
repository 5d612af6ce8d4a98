"""Who is waiting in the Screener: the senders, grouped from its emails (pure),
and the reader that keeps them until the account changes.

One view costs at most two JMAP requests (each an Email/query with the
Email/get of its ids, as many pages as a request may carry), newest first, at
most :data:`MAX_EMAILS` emails; past that the page says more are waiting. The
view is kept until push, a pass or a decision says the account changed: a
page shown again while nothing changed costs no request at all.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mailroom.correspondents.screen import ask_sent
from mailroom.jmap.client import JmapClient
from mailroom.jmap.wire import Call, page_of
from mailroom.lists.listid import LIST_ID, list_id, list_name, subject_of
from mailroom.triage.scan import mailbox_ids_of, sender_of

PROPERTIES = ("from", "subject", "preview", "receivedAt", "mailboxIds", LIST_ID)
MAX_EMAILS = 20_000  # read for one view (a few MB at most)
REQUESTS = 2  # at most, for one view
MAX_NAME, MAX_SUBJECT, MAX_PREVIEW = 120, 200, 256  # characters shown

# Marks that reorder or hide text (bidirectional overrides and isolates, zero
# widths): a sender named with them could make its address read as another's.
_HIDING = {0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2060, 0xFEFF}
_HIDING |= set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))


def shown(text: Any, limit: int) -> str:
    """Text from mail as the page shows it: one line, no control or reordering
    characters, at most ``limit`` characters (escaping is the template's job)."""
    if not isinstance(text, str):
        return ""
    out = []
    for char in text:
        if ord(char) in _HIDING:
            continue
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            char = " "
        out.append(char)
    flat = " ".join("".join(out).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass
class Waiting:
    """One sender waiting in the Screener."""

    address: str
    name: str
    emails: int
    subject: str  # of the newest email
    preview: str
    received: str  # the newest email's receivedAt, as the server wrote it
    deciding: bool = False  # a triage label is on one of its emails already
    written_to: bool = False  # the user has written to them (in Sent: To, Cc or Bcc)

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def when(self) -> datetime | None:
        return _when(self.received)


@dataclass
class WaitingList:
    """One mailing list with posts waiting in the Screener (its posts are not
    among the senders': a list is decided once, as a whole)."""

    list_id: str
    name: str  # the list's own name, from its List-Id ("" if it gives none)
    emails: int
    subject: str  # of the newest post
    preview: str
    received: str
    posters: set[str] = field(default_factory=set)
    deciding: bool = False  # a triage label is on one of its posts already

    @property
    def subject_key(self) -> str:
        """How its decision is named in the ledger and the forms: ``list:<id>``."""
        return subject_of(self.list_id)

    @property
    def when(self) -> datetime | None:
        return _when(self.received)


def _when(received: str) -> datetime | None:
    try:
        return datetime.fromisoformat(received.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class ScreenerView:
    senders: list[Waiting] = field(default_factory=list)  # newest first
    more: bool = False  # more emails wait than were read
    emails: int = 0
    lists: list[WaitingList] = field(default_factory=list)  # newest first


def view_of(
    emails: Sequence[Mapping[str, Any]],
    labels: frozenset[str],
    own: frozenset[str] = frozenset(),
    *,
    more: bool = False,
) -> ScreenerView:
    """The Screener's emails (newest first) as its lists and its senders."""
    plain: list[Mapping[str, Any]] = []
    listed: list[tuple[str, Mapping[str, Any]]] = []
    for email in emails:
        ident = list_id(email.get(LIST_ID))
        if ident is None:
            plain.append(email)
        else:
            listed.append((ident, email))
    return ScreenerView(
        senders=group(plain, labels, own),
        more=more,
        emails=len(emails),
        lists=group_lists(listed, labels),
    )


def group_lists(
    emails: Iterable[tuple[str, Mapping[str, Any]]], labels: frozenset[str]
) -> list[WaitingList]:
    """(list id, email) pairs, newest first, as lists, newest first."""
    by_list: dict[str, WaitingList] = {}
    for ident, email in emails:
        labelled = bool(mailbox_ids_of(email) & labels)
        found = sender_of(email)
        waiting = by_list.get(ident)
        if waiting is None:
            received = email.get("receivedAt")
            waiting = by_list[ident] = WaitingList(
                list_id=ident,
                name=shown(list_name(email.get(LIST_ID)), MAX_NAME),
                emails=0,
                subject=shown(email.get("subject"), MAX_SUBJECT),
                preview=shown(email.get("preview"), MAX_PREVIEW),
                received=received if isinstance(received, str) else "",
            )
        waiting.emails += 1
        waiting.deciding |= labelled
        if found is not None:
            waiting.posters.add(found[0])
    return sorted(by_list.values(), key=lambda w: w.received, reverse=True)


def group(
    emails: Iterable[Mapping[str, Any]], labels: frozenset[str], own: frozenset[str] = frozenset()
) -> list[Waiting]:
    """Emails (newest first) as senders, newest first; the account's own
    addresses and emails without a sender left out."""
    by_sender: dict[str, Waiting] = {}
    for email in emails:
        found = sender_of(email)
        if found is None or found[0] in own:
            continue
        address, name = found
        labelled = bool(mailbox_ids_of(email) & labels)
        waiting = by_sender.get(address)
        if waiting is None:
            received = email.get("receivedAt")
            by_sender[address] = Waiting(
                address=shown(address, 320),
                name=shown(name, MAX_NAME),
                emails=1,
                subject=shown(email.get("subject"), MAX_SUBJECT),
                preview=shown(email.get("preview"), MAX_PREVIEW),
                received=received if isinstance(received, str) else "",
                deciding=labelled,
            )
        else:
            waiting.emails += 1
            waiting.deciding |= labelled
            if not waiting.name:
                waiting.name = shown(name, MAX_NAME)
    return sorted(by_sender.values(), key=lambda w: w.received, reverse=True)


class ScreenerReader:
    """Reads the Screener for the pages; ``changed()`` forgets the view."""

    def __init__(
        self,
        jmap: JmapClient,
        screener_id: str,
        labels: frozenset[str],
        own: frozenset[str] = frozenset(),
        sent_id: str = "",
    ) -> None:
        self._jmap = jmap
        self._sent = sent_id
        self._screener = screener_id
        self._labels = labels
        self._own = own
        self._view: ScreenerView | None = None
        self._asked: dict[str, bool] = {}  # sender -> written to, asked since the last change
        self._generation = 0
        self._lock = asyncio.Lock()  # one read at a time; the others share it

    def changed(self) -> None:
        self._generation += 1
        self._view = None
        self._asked.clear()

    async def mark_written_to(self, shown: list[Waiting], spent: int) -> None:
        """Whom of the senders shown the user has written to: one request for
        those not asked yet (a page's worth), when the view has not already
        spent its two (``spent``: what reading the Screener cost it)."""
        async with self._lock:
            new = [w.address for w in shown if w.address not in self._asked]
            if self._sent and new and spent < REQUESTS:
                found, asked = await ask_sent(self._jmap, self._sent, new)
                self._asked.update({a: a in found for a in asked})
            for waiting in shown:
                waiting.written_to = self._asked.get(waiting.address, False)

    async def view(self) -> tuple[ScreenerView, int]:
        """The view, and the requests this call cost (0: kept from before)."""
        async with self._lock:
            if self._view is not None:
                return self._view, 0
            generation = self._generation
            view, used = await self._read()
            if generation == self._generation:  # not changed while reading
                self._view = view
            return view, used

    async def _read(self) -> tuple[ScreenerView, int]:
        """The view, and how many requests it took."""
        jmap = self._jmap
        size = jmap.page_size(4096)
        per = max(1, jmap.session.max_calls_in_request // 2)
        filter_ = {"inMailbox": self._screener}
        emails: list[dict[str, Any]] = []
        position = 0
        for used in range(1, REQUESTS + 1):
            calls = _page_calls(jmap, filter_, position, size, per)
            resp = await jmap.request(calls)
            for i in range(per):
                page = page_of(
                    resp.get(f"p{i}q", "Email/query"), resp.get(f"p{i}g", "Email/get"), size
                )
                emails.extend(page.emails)
                position += len(page.ids)
                if page.last or len(emails) >= MAX_EMAILS:
                    return view_of(emails, self._labels, self._own, more=not page.last), used
                if len(page.ids) < size:
                    # The server clamped the page: the later positions asked
                    # for assumed the full size, so ask again from here.
                    size = len(page.ids)
                    break
        return view_of(emails, self._labels, self._own, more=True), REQUESTS


def _page_calls(
    jmap: JmapClient, filter_: Mapping[str, Any], position: int, size: int, per: int
) -> Sequence[Call]:
    calls: list[Call] = []
    for i in range(per):
        calls += jmap.query_page_calls(
            filter_,
            PROPERTIES,
            position=position + i * size,
            limit=size,
            prefix=f"p{i}",
            oldest_first=False,
        )
    return calls
