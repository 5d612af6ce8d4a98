"""An asynchronous JMAP client: discovery, batched calls, paging and chunking."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx

from mailroom.core.chunks import chunked
from mailroom.core.secret import Secret
from mailroom.jmap import moves
from mailroom.jmap.errors import (
    JmapAuthError,
    JmapError,
    JmapHttpError,
    JmapMethodError,
    JmapProtocolError,
    JmapRequestError,
    JmapSetError,
    JmapTransportError,
)
from mailroom.jmap.session import CONTACTS, CORE, MAIL, SUBMISSION, Session, parse_session
from mailroom.jmap.wire import (
    MAILBOXES,
    MAX_PAGES,
    RATE_LIMIT,
    RATE_LIMIT_WAITS,
    Call,
    Page,
    Responses,
    RideAlong,
    SetOutcome,
    absorb,
    answer_cap,
    json_of,
    list_of_objects,
    mailbox_ids,
    mailboxes_in,
    mailboxes_of,
    note_mailbox_state,
    page_of,
    problem_of,
    query_args,
    query_ids,
    ref,
    set_errors,
)
from mailroom.net import (
    Channel,
    RetryExhausted,
    Sleep,
    TransportFailure,
    discovered,
)

log = logging.getLogger(__name__)
USING = [CORE, MAIL]
CONTACTS_METHODS = ("AddressBook/", "ContactCard/")  # RFC 9610: the contacts account
SUBMISSION_METHODS = ("Identity/",)  # RFC 8621 §6: the submission account


class JmapClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        session_url: str,
        token: Secret,
        *,
        sleep: Sleep = asyncio.sleep,
        retries: int = 3,
    ) -> None:
        self._session_url = session_url
        self._token = token
        self._channel = Channel(http, _translate, sleep=sleep, retries=retries)
        self.sleep = sleep
        self._session: Session | None = None
        self._riders: list[RideAlong] = []

    @property
    def requests_made(self) -> int:
        return self._channel.requests_made

    @property
    def session(self) -> Session:
        return discovered(self._session, "JmapClient.discover()")

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token.reveal()}"}

    async def discover(self) -> Session:
        response = await self._send("GET", self._session_url, what="JMAP session")
        self._session = parse_session(json_of(response, "JMAP session"), str(response.url))
        self._channel.max_body = answer_cap(self._session)
        return self._session

    def ride_along(self, call: Call) -> RideAlong:
        """``call`` (a read) goes out with the next request that has room for it,
        instead of a request of its own; :meth:`answer` gives its responses."""
        rider = RideAlong(Call(call.name, call.args, f"ride{len(self._riders)}-{call.call_id}"))
        self._riders.append(rider)
        return rider

    async def answer(self, rider: RideAlong) -> Responses:
        """The responses ``rider`` came back with; sent on its own if no request took it."""
        if rider.responses is None:
            if rider in self._riders:
                self._riders.remove(rider)
            rider.responses = await self.request([rider.call])
        return rider.responses

    async def request(self, calls: Sequence[Call]) -> Responses:
        """Send ``calls`` as one HTTP request (they may back-reference each other)."""
        session = self.session
        if len(calls) > session.max_calls_in_request:
            raise ValueError(
                f"{len(calls)} calls exceed maxCallsInRequest={session.max_calls_in_request}"
            )
        room = session.max_calls_in_request - len(calls)
        riders, self._riders = self._riders[:room], self._riders[room:]
        try:
            responses = await self._request([*calls, *(r.call for r in riders)])
        except BaseException:
            self._riders[:0] = riders  # not carried: the next request, or answer(), takes them
            raise
        for rider in riders:
            rider.responses = responses
        return responses

    async def _request(self, calls: Sequence[Call]) -> Responses:
        session = self.session
        using = list(USING)
        method_calls = []
        for c in calls:
            account = session.account_id
            if c.name.startswith(CONTACTS_METHODS):
                if session.contacts_account_id is None:
                    raise JmapProtocolError(f"{c.name}: the server offers no {CONTACTS}")
                account = session.contacts_account_id
                if CONTACTS not in using:
                    using.append(CONTACTS)
            elif c.name.startswith(SUBMISSION_METHODS):
                if session.submission_account_id is None:
                    raise JmapProtocolError(f"{c.name}: the server offers no {SUBMISSION}")
                account = session.submission_account_id
                if SUBMISSION not in using:
                    using.append(SUBMISSION)
            method_calls.append([c.name, {"accountId": account, **c.args}, c.call_id])
        body = {"using": using, "methodCalls": method_calls}
        # Patches and reads are safe to send twice; a create is not.
        repeatable = not any(c.name.endswith("/set") and "create" in c.args for c in calls)
        response = await self._send(
            "POST", session.api_url, what="JMAP API", repeatable=repeatable, json=body
        )
        data = json_of(response, "JMAP API")
        if isinstance(data, dict):
            await self._follow_session(data.get("sessionState"))
        items = data.get("methodResponses") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise JmapProtocolError("JMAP API: response has no methodResponses list")
        parsed: list[tuple[str, dict[str, Any], str]] = []
        for item in items:
            if (
                not isinstance(item, list)
                or len(item) != 3
                or not isinstance(item[0], str)
                or not isinstance(item[1], dict)
                or not isinstance(item[2], str)
            ):
                raise JmapProtocolError("JMAP API: malformed method response")
            parsed.append((item[0], item[1], item[2]))
        return Responses(parsed)

    async def _follow_session(self, state: Any) -> None:
        """Fetch the session again when an answer says it changed (RFC 8620 §3.4).

        A new ``apiUrl``, account or capability is then used from the next
        request on, without a restart. If the refetch fails, the old session
        stays and the next answer tries again.
        """
        session = self.session
        if not isinstance(state, str) or not state or state == session.state:
            return
        try:
            fresh = await self.discover()
        except JmapAuthError:
            raise
        except JmapError as exc:
            log.warning(
                "the session changed but could not be read again",
                extra={"fields": {"error": str(exc)}},
            )
            return
        if fresh.api_url != session.api_url or fresh.account_id != session.account_id:
            log.info(
                "the JMAP session changed; using it from now on",
                extra={"fields": {"api_url": fresh.api_url}},
            )

    async def get_mailboxes(self) -> tuple[list[dict[str, Any]], str]:
        """Every mailbox and the Mailbox state."""
        return mailboxes_in(await self.request([MAILBOXES]), MAILBOXES.call_id)

    async def create_mailbox(self, name: str, parent_id: str | None = None) -> str:
        args = {"create": {"new": {"name": name, "parentId": parent_id}}}
        result = (await self.request([Call("Mailbox/set", args, "c")])).get("c", "Mailbox/set")
        if result.get("notCreated"):
            raise JmapSetError("Mailbox/set", "notCreated", result["notCreated"])
        created = result.get("created") or {}
        new = created.get("new") if isinstance(created, dict) else None
        if not isinstance(new, dict) or not isinstance(new.get("id"), str):
            raise JmapProtocolError("Mailbox/set: created mailbox has no id")
        return str(new["id"])

    async def own_addresses(self) -> frozenset[str]:
        """The account's own addresses: its identities (where offered) and its username.

        Mail from these is the user's own; Mailroom never triages it.
        """
        session = self.session
        out = set()
        if "@" in session.username:
            out.add(session.username.lower())
        if session.submission_account_id is not None:
            got = (await self.request([Call("Identity/get", {"ids": None}, "i")])).get(
                "i", "Identity/get"
            )
            for identity in list_of_objects(got, "Identity/get"):
                email = identity.get("email")
                # A wildcard identity (*@domain) names a domain, not an address.
                if (
                    isinstance(email, str)
                    and "@" in email
                    and "*" not in email
                    and len(email) <= 320
                ):
                    out.add(email.strip().lower())
        return frozenset(out)

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
    ) -> list[Call]:
        """An Email/query and the Email/get of its ids, as one request's calls."""
        q, g = prefix + "q", prefix + "g"
        return [
            Call("Email/query", query_args(filter_, position, limit), q),
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
                    *self.query_page_calls(filter_, properties, position=position, limit=limit),
                ]
            )
            return page_of(resp.get("q", "Email/query"), resp.get("g", "Email/get"), limit), resp
        # Fewer calls a request than a query and its get: two round trips.
        query = (
            await self.request([Call("Email/query", query_args(filter_, position, limit), "q")])
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
                self._set_answer(resp, f"s{i}", sent, outcome)
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

    @staticmethod
    def _set_answer(resp: Responses, call_id: str, sent: list[str], outcome: SetOutcome) -> None:
        """One Email/set call's answer: each email sent ends updated or in ``failures``."""
        try:
            result = resp.get(call_id, "Email/set")
        except JmapMethodError as exc:  # this call's emails only
            for key in sent:
                outcome.failures[key] = {"type": exc.type, "description": str(exc)}
            return
        if isinstance(result.get("newState"), str):
            outcome.new_state = result["newState"]
            outcome.states.add(result["newState"])
        updated = result.get("updated")
        done = set(updated) if isinstance(updated, dict) else set()
        failures = set_errors(result.get("notUpdated"))
        for key in sent:
            if key in failures:
                outcome.failures[key] = failures[key]
            elif key in done:
                outcome.updated.add(key)
                outcome.failures.pop(key, None)
            else:
                outcome.failures[key] = {
                    "type": "serverFail",
                    "description": "the server did not say whether it updated it",
                }

    async def _send(self, method: str, url: str, *, what: str, **kwargs: Any) -> httpx.Response:
        response = await self._channel.send(
            method, url, what=what, headers=self.auth_headers, **kwargs
        )
        status = response.status_code
        if status in (401, 403):
            raise JmapAuthError(status, what)
        if status == 400:
            problem = problem_of(response)
            if problem is not None:
                raise JmapRequestError(*problem)
        if status != 200:
            raise JmapHttpError(status, what, response.reason_phrase)
        return response


def _translate(exc: TransportFailure | RetryExhausted) -> Exception:
    if isinstance(exc, RetryExhausted):
        return JmapHttpError(exc.status, exc.what, "server busy, retries exhausted")
    return JmapTransportError(str(exc))
