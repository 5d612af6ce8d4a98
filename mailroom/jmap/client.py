"""An asynchronous JMAP client: discovery, batched calls, paging and chunking."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import httpx

from mailroom.core.secret import Secret
from mailroom.jmap.emails import EmailMethods
from mailroom.jmap.errors import (
    JmapAuthError,
    JmapError,
    JmapHttpError,
    JmapProtocolError,
    JmapRequestError,
    JmapSetError,
    JmapTransportError,
)
from mailroom.jmap.session import CONTACTS, CORE, MAIL, SUBMISSION, Session, parse_session
from mailroom.jmap.wire import (
    MAILBOXES,
    Call,
    Responses,
    RideAlong,
    answer_cap,
    json_of,
    list_of_objects,
    mailboxes_in,
    problem_of,
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
SENT_SAMPLE = 200  # newest Sent emails whose From count as the user's own
CONTACTS_METHODS = ("AddressBook/", "ContactCard/")  # RFC 9610: the contacts account
SUBMISSION_METHODS = ("Identity/",)  # RFC 8621 §6: the submission account


class JmapClient(EmailMethods):
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

    async def own_sources(self, sent_id: str | None) -> tuple[list[Any], list[dict[str, Any]]]:
        """What tells the account's own addresses: its identities (where the
        server offers submission) and the From of its newest Sent mail (at most
        :data:`SENT_SAMPLE` emails); one request where the server allows."""
        identities: list[Any] = []
        sent: list[dict[str, Any]] = []
        identity = (
            [Call("Identity/get", {"ids": None}, "i")]
            if self.session.submission_account_id is not None
            else []
        )
        if sent_id:
            page, resp = await self.query_page(
                {"inMailbox": sent_id},
                ["from"],
                position=0,
                limit=self.page_size(SENT_SAMPLE),
                before=identity,
                oldest_first=False,
            )
            sent = page.emails
            if identity and resp is not None:
                identity = []  # it rode along
                identities = list_of_objects(resp.get("i", "Identity/get"), "Identity/get")
        if identity:
            got = (await self.request(identity)).get("i", "Identity/get")
            identities = list_of_objects(got, "Identity/get")
        return identities, sent

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
