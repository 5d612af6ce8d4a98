"""The Email methods of the JMAP client: paged queries, reads, and writes in
chunks (a move adds, reads back, then removes, so an email is never lost).

A mixin of :class:`~mailroom.jmap.client.JmapClient`, which supplies the
session, the request and the sleep."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from mailroom.core.chunks import chunked
from mailroom.jmap import moves
from mailroom.jmap.errors import JmapProtocolError
from mailroom.jmap.session import Session
from mailroom.jmap.wire import (
    MAX_PAGES,
    RATE_LIMIT,
    RATE_LIMIT_WAITS,
    Call,
    Page,
    Responses,
    SetOutcome,
    absorb,
    list_of_objects,
    mailbox_ids,
    mailboxes_of,
    note_mailbox_state,
    page_of,
    query_args,
    query_ids,
    read_set_answer,
    ref,
)

log = logging.getLogger(__name__)


class EmailMethods:
    """Email/query, Email/get and Email/set over the client's requests."""

    sleep: Callable[[float], Awaitable[None]]

    @property
    def session(self) -> Session:
        raise NotImplementedError

    async def request(self, calls: Sequence[Call]) -> Responses:
        raise NotImplementedError

    def page_size(self, wanted: int = 256) -> int:
        return max(1, min(wanted, self.session.max_objects_in_get))

    def query_page_calls(
        self,
        filter_: Mapping[str, Any],
        properties: Sequence[str],
        *,
        position: int,
        limit: int,
        prefix: str = "",
        oldest_first: bool = True,
    ) -> list[Call]:
        """An Email/query and the Email/get of its ids, as one request's calls."""
        q, g = prefix + "q", prefix + "g"
        return [
            Call("Email/query", query_args(filter_, position, limit, oldest_first=oldest_first), q),
            Call(
                "Email/get",
                {"#ids": ref(q, "Email/query", "/ids"), "properties": list(properties)},
                g,
            ),
        ]

    async def query_page(
        self,
        filter_: Mapping[str, Any],
        properties: Sequence[str],
        *,
        position: int,
        limit: int,
        before: Sequence[Call] = (),
        oldest_first: bool = True,
    ) -> tuple[Page, Responses | None]:
        """One page of emails, in one request when ``maxCallsInRequest`` allows.

        ``before`` are calls to send in the same request when there is room;
        their responses come back as the second value (None: they did not fit
        and were not sent).
        """
        room = self.session.max_calls_in_request
        if room >= len(before) + 2:
            resp = await self.request(
                [
                    *before,
                    *self.query_page_calls(
                        filter_,
                        properties,
                        position=position,
                        limit=limit,
                        oldest_first=oldest_first,
                    ),
                ]
            )
            return page_of(resp.get("q", "Email/query"), resp.get("g", "Email/get"), limit), resp
        # Fewer calls a request than a query and its get: two round trips.
        query = (
            await self.request(
                [
                    Call(
                        "Email/query",
                        query_args(filter_, position, limit, oldest_first=oldest_first),
                        "q",
                    )
                ]
            )
        ).get("q", "Email/query")
        ids = query_ids(query)
        got: dict[str, Any] = {"list": [], "state": ""}
        if ids:
            got = (
                await self.request(
                    [Call("Email/get", {"ids": ids, "properties": list(properties)}, "g")]
                )
            ).get("g", "Email/get")
        return page_of(query, got, limit), None

    async def query_emails(
        self, filter_: Mapping[str, Any], properties: Sequence[str], *, per_request: int = 1
    ) -> list[dict[str, Any]]:
        """Every email matching ``filter_``, paged by position until a short page.

        ``total`` is not relied on (Fastmail omits it unless asked), and the
        page size is the ``limit`` the server says it applied (RFC 8620 lets
        it clamp). ``per_request`` pages ride in each request when
        ``maxCallsInRequest`` has room: a large result costs fewer round trips.
        """
        out: list[dict[str, Any]] = []
        async for page in self.pages(filter_, properties, position=0, per_request=per_request):
            out.extend(page.emails)
        return out

    async def pages(
        self,
        filter_: Mapping[str, Any],
        properties: Sequence[str],
        *,
        position: int,
        per_request: int = 1,
    ) -> AsyncIterator[Page]:
        size = self.page_size()
        per = max(1, min(per_request, self.session.max_calls_in_request // 2))
        for _ in range(MAX_PAGES):
            if per == 1:
                page, _resp = await self.query_page(
                    filter_, properties, position=position, limit=size
                )
                yield page
                if page.last:
                    return
                position += len(page.ids)
                continue
            calls = []
            for i in range(per):
                calls += self.query_page_calls(
                    filter_, properties, position=position + i * size, limit=size, prefix=f"p{i}"
                )
            resp = await self.request(calls)
            for i in range(per):
                page = page_of(
                    resp.get(f"p{i}q", "Email/query"), resp.get(f"p{i}g", "Email/get"), size
                )
                yield page
                if page.last:
                    return
                position += len(page.ids)
                if len(page.ids) < size:
                    # The server clamped the page: the later positions asked
                    # for assumed the full size, so ask again from here.
                    size = len(page.ids)
                    break
        raise JmapProtocolError(f"Email/query: more than {MAX_PAGES} pages")

    async def get_emails(
        self, ids: Sequence[str], properties: Sequence[str]
    ) -> list[dict[str, Any]]:
        """These emails (those that still exist), ``maxObjectsInGet`` a call and as
        many calls a request as ``maxCallsInRequest`` allows."""
        session = self.session
        calls = [
            Call("Email/get", {"ids": chunk, "properties": list(properties)}, f"g{n}")
            for n, chunk in enumerate(chunked(list(ids), session.max_objects_in_get))
        ]
        out: list[dict[str, Any]] = []
        for batch in chunked(calls, session.max_calls_in_request):
            responses = await self.request(batch)
            for call in batch:
                out.extend(list_of_objects(responses.get(call.call_id, "Email/get"), "Email/get"))
        return out

    async def update_emails(
        self,
        updates: Mapping[str, Mapping[str, Any]],
        *,
        want_mailbox_state: bool = True,
        read_back: bool = False,
    ) -> SetOutcome:
        """Apply ``Email/set`` updates chunked to the session's limits.

        Chunks ride in as few requests as ``maxCallsInRequest`` allows. The last
        request also reads the Mailbox state, so callers learn every state
        their own writes produced without another round trip. Whatever shape
        the answer has, each email ends updated or in ``failures``; records the
        server throttled (``rateLimit``, Fastmail's way) are sent again after a pause.
        ``read_back``: each chunk is followed, in the same request, by an
        ``Email/get`` of its emails' mailboxes (``seen``): what the server did,
        not what it said. This never removes an email from a mailbox by itself:
        use :meth:`move_emails` to re-file.
        """
        outcome = SetOutcome()
        pending = dict(updates)
        for wait in (0.0, *RATE_LIMIT_WAITS):
            if not pending:
                break
            if wait:
                await self.sleep(wait)
            await self._email_set_round(pending, outcome, want_mailbox_state, read_back)
            throttled = [k for k, err in outcome.failures.items() if err.get("type") == RATE_LIMIT]
            pending = {k: updates[k] for k in throttled}
        return outcome

    async def move_emails(self, patches: Mapping[str, Mapping[str, Any]]) -> SetOutcome:
        """Re-file emails (``mailboxIds/<id>: true | null`` patches) so that none is
        ever lost (``moves``): the new mailboxes added and read back in one
        request, then the old ones removed from the emails the server shows in
        every new one. One request more than a plain ``update_emails`` when
        anything is added; an email not filed is a failure of type ``notFiled``."""
        plan = moves.split(patches)
        outcome = SetOutcome()
        added = SetOutcome()
        if plan.adds:
            added = await self.update_emails(plan.adds, read_back=True)
            absorb(outcome, added)
        safe, not_filed = moves.confirmed(plan, added.failures, added.seen)
        outcome.failures.update(not_filed)
        if safe:
            absorb(outcome, await self.update_emails(safe))
        failed = set(outcome.failures)
        outcome.updated = {e for e in patches if e not in failed}
        for email in outcome.updated:
            outcome.failures.pop(email, None)
        return outcome

    async def _email_set_round(
        self,
        updates: Mapping[str, Mapping[str, Any]],
        outcome: SetOutcome,
        want_state: bool,
        read_back: bool = False,
    ) -> None:
        session = self.session
        chunks = chunked(list(updates.items()), session.max_objects_in_set)
        room = session.max_calls_in_request
        # The Mailbox state rides along in the last request when there is room;
        # a read-back Email/get follows its Email/set in the same request.
        per_chunk = 2 if read_back and room >= 2 else 1
        ride_along = want_state and room - per_chunk >= 1
        capacity = room - 1 if ride_along else room
        batches = chunked(chunks, max(1, capacity // per_chunk))
        for number, batch in enumerate(batches):
            calls = []
            for i, chunk in enumerate(batch):
                calls.append(Call("Email/set", {"update": dict(chunk)}, f"s{i}"))
                if per_chunk == 2:
                    calls.append(mailboxes_of([key for key, _ in chunk], f"g{i}"))
            last = number == len(batches) - 1
            if last and ride_along:
                calls.append(Call("Mailbox/get", {"ids": []}, "mb"))
            resp = await self.request(calls)
            outcome.requests += 1
            for i, chunk in enumerate(batch):
                sent = [key for key, _ in chunk]
                read_set_answer(resp, f"s{i}", sent, outcome)
                if read_back:
                    got = resp if per_chunk == 2 else await self.request([mailboxes_of(sent, "g0")])
                    name = f"g{i}" if per_chunk == 2 else "g0"
                    for email in list_of_objects(got.get(name, "Email/get"), "Email/get"):
                        if isinstance(email.get("id"), str):
                            outcome.seen[email["id"]] = mailbox_ids(email)
            if last and ride_along:
                note_mailbox_state(resp, outcome)
        if want_state and not ride_along:
            note_mailbox_state(
                await self.request([Call("Mailbox/get", {"ids": []}, "mb")]), outcome
            )
