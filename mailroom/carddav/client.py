"""An asynchronous CardDAV client: discovery, search, get, conditional writes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from mailroom.carddav.dav_xml import (
    CARD,
    DAV,
    DavResponse,
    DavXmlError,
    multiget_body,
    parse_multistatus,
    propfind_body,
    query_body,
)
from mailroom.carddav.errors import (
    CardDavAuthError,
    CardDavError,
    CardDavHttpError,
    PreconditionFailed,
)
from mailroom.core.chunks import MAX_OR_CONDITIONS, chunked
from mailroom.core.secret import Secret
from mailroom.core.urls import insecure_reason, origin
from mailroom.net import Channel, RetryExhausted, Sleep, TransportFailure, discovered

XML = {"Content-Type": "application/xml; charset=utf-8"}
VCARD = {"Content-Type": "text/vcard; charset=utf-8"}
_REDIRECTS = (301, 302, 303, 307, 308)

# The most of one CardDAV answer read into memory (see __init__).
MAX_ANSWER = 32 * 1024 * 1024


@dataclass(frozen=True)
class Card:
    href: str  # absolute URL
    etag: str | None
    text: str


class CardDavClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        username: str,
        password: Secret,
        *,
        sleep: Sleep = asyncio.sleep,
        retries: int = 3,
    ) -> None:
        self._base_url = base_url
        self._origin = origin(base_url)
        self._auth = httpx.BasicAuth(username, password.reveal())
        # A REPORT carrying many vCards (a group of thousands of members, say)
        # is the largest answer here; past 32 MiB it is abandoned.
        self._channel = Channel(http, _translate, sleep=sleep, retries=retries, max_body=MAX_ANSWER)
        self._addressbook: str | None = None

    @property
    def requests_made(self) -> int:
        return self._channel.requests_made

    @property
    def addressbook_url(self) -> str:
        return discovered(self._addressbook, "CardDavClient.discover()")

    # -- discovery (RFC 6764 §6, RFC 6352 §7) --------------------------------

    async def discover(self) -> str:
        """Find the address book: well-known → principal → home → the default address book."""
        start = urljoin(self._base_url, "/.well-known/carddav")
        context, found = await self._propfind_following(
            start, [(DAV, "current-user-principal")], depth="0", what="CardDAV discovery"
        )
        principal = _one(found).child_href(DAV, "current-user-principal")
        if principal is None:
            raise CardDavError(f"CardDAV discovery: no current-user-principal at {context}")
        principal_url = urljoin(context, principal)
        found = await self._propfind(
            principal_url, [(CARD, "addressbook-home-set")], "0", "CardDAV principal"
        )
        home = _one(found).child_href(CARD, "addressbook-home-set")
        if home is None:
            raise CardDavError("CardDAV principal: no addressbook-home-set")
        home_url = urljoin(principal_url, home)
        found = await self._propfind(
            home_url,
            [(DAV, "resourcetype"), (DAV, "displayname"), (DAV, "current-user-privilege-set")],
            "1",
            "CardDAV home",
        )
        books = [r for r in found if r.has_resourcetype(CARD, "addressbook")]
        if not books:
            raise CardDavError("CardDAV home: no address book found")
        # Several books (a shared one, say): a writable one, the one called
        # Default (Fastmail's and Cyrus's own), then the first by URL.
        best = min(
            books,
            key=lambda r: (
                not _writable(r),
                r.href.rstrip("/").rpartition("/")[2] != "Default",
                urljoin(home_url, r.href),
            ),
        )
        if not _writable(best):
            raise CardDavError("CardDAV home: every address book is read-only")
        self._addressbook = urljoin(home_url, best.href)
        return self._addressbook

    # -- reads ----------------------------------------------------------------

    async def search(self, prop: str, values: Sequence[str]) -> list[Card]:
        """Cards whose ``prop`` equals one of ``values`` (case-insensitive on the server)."""
        out: list[Card] = []
        for chunk in chunked(values, MAX_OR_CONDITIONS):
            out += await self._report(query_body(prop, chunk), f"CardDAV search by {prop}")
        return out

    async def multiget(self, hrefs: Sequence[str]) -> dict[str, Card | None]:
        """Cards by href in one request; a card that is gone maps to None."""
        if not hrefs:
            return {}
        paths = [urlsplit(h).path for h in hrefs]
        cards = await self._report(multiget_body(paths), "CardDAV multiget")
        by_path = {unquote(urlsplit(c.href).path): c for c in cards}
        return {h: by_path.get(unquote(p)) for h, p in zip(hrefs, paths, strict=True)}

    async def get(self, href: str) -> Card | None:
        response = await self._send("GET", href, what="CardDAV get")
        if response.status_code == 404:
            return None
        self._check(response, "CardDAV get", 200)
        return Card(href, response.headers.get("ETag"), response.text)

    # -- writes ---------------------------------------------------------------

    async def create(self, text: str, uid: str | None = None) -> Card:
        """PUT a new card under a fresh name; never overwrites (If-None-Match: *)."""
        name = f"{uid or uuid.uuid4()}.vcf"
        href = urljoin(self.addressbook_url, name)
        response = await self._send(
            "PUT",
            href,
            what="CardDAV create",
            content=text.encode(),
            headers={**VCARD, "If-None-Match": "*"},
        )
        if response.status_code == 412:
            raise PreconditionFailed(f"CardDAV create: {name} already exists")
        self._check(response, "CardDAV create", 201, 204)
        return Card(href, response.headers.get("ETag"), text)

    async def update(self, card: Card, text: str) -> Card:
        """PUT ``text`` over ``card`` only if it is unchanged (If-Match its ETag).

        Always conditional: with no ETag known, the card is read first, and a
        server that gives none gets no write at all.
        """
        if not card.etag:
            fresh = await self.get(card.href)
            if fresh is None:
                raise CardDavError("CardDAV update: the card is gone")
            if not fresh.etag:
                raise CardDavError("CardDAV update: the server gives no ETag; not writing blind")
            if fresh.text != card.text:
                raise PreconditionFailed("CardDAV update: card changed since it was read")
            card = fresh
        headers = {**VCARD, "If-Match": str(card.etag)}
        response = await self._send(
            "PUT", card.href, what="CardDAV update", content=text.encode(), headers=headers
        )
        if response.status_code == 412:
            raise PreconditionFailed("CardDAV update: card changed since it was read")
        self._check(response, "CardDAV update", 200, 201, 204)
        return Card(card.href, response.headers.get("ETag"), text)

    async def delete(self, card: Card) -> bool:
        """DELETE ``card`` only if it is unchanged (If-Match its ETag); False if gone.

        Raises PreconditionFailed when it changed since it was read, and never
        deletes blind: a card read without an ETag is not deleted.
        """
        if not card.etag:
            raise PreconditionFailed("CardDAV delete: the server gave no ETag; not deleting blind")
        response = await self._send(
            "DELETE", card.href, what="CardDAV delete", headers={"If-Match": str(card.etag)}
        )
        if response.status_code == 412:
            raise PreconditionFailed("CardDAV delete: card changed since it was read")
        if response.status_code == 404:
            return False
        self._check(response, "CardDAV delete", 200, 204)
        return True

    # -- plumbing ---------------------------------------------------------------

    async def _report(self, body: str, what: str) -> list[Card]:
        response = await self._send(
            "REPORT",
            self.addressbook_url,
            what=what,
            content=body.encode(),
            headers={**XML, "Depth": "1"},
        )
        self._check(response, what, 207)
        out = []
        for item in _multistatus(response, what):
            data = item.text(CARD, "address-data")
            if item.status is not None and item.status >= 300:
                continue
            if data is None:
                continue
            out.append(
                Card(urljoin(self.addressbook_url, item.href), item.text(DAV, "getetag"), data)
            )
        return out

    async def _propfind(
        self, url: str, props: list[tuple[str, str]], depth: str, what: str
    ) -> list[DavResponse]:
        response = await self._send(
            "PROPFIND",
            url,
            what=what,
            content=propfind_body(props).encode(),
            headers={**XML, "Depth": depth},
        )
        self._check(response, what, 207)
        return _multistatus(response, what)

    async def _propfind_following(
        self, url: str, props: list[tuple[str, str]], *, depth: str, what: str
    ) -> tuple[str, list[DavResponse]]:
        # Redirects are followed by hand: httpx turns some into GETs, and the
        # well-known URL must be asked with PROPFIND all the way.
        for _ in range(5):
            response = await self._send(
                "PROPFIND",
                url,
                what=what,
                content=propfind_body(props).encode(),
                headers={**XML, "Depth": depth},
            )
            if response.status_code in _REDIRECTS and "Location" in response.headers:
                url = urljoin(url, response.headers["Location"])
                continue
            self._check(response, what, 207)
            return url, _multistatus(response, what)
        raise CardDavError(f"{what}: too many redirects")

    async def _send(self, method: str, url: str, *, what: str, **kwargs: Any) -> httpx.Response:
        # The password goes to the configured origin only, and never in clear:
        # a redirect or an absolute href elsewhere is refused, not followed.
        problem = insecure_reason(url)
        if problem is None and origin(url) != self._origin:
            scheme, host, port = origin(url)
            problem = f"{scheme}://{host}:{port} is not the configured CardDAV server"
        if problem is not None:
            raise CardDavError(f"{what}: refusing to send credentials: {problem}")
        # Every CardDAV write is conditional (If-Match / If-None-Match): a
        # repeat is refused with 412, never applied twice.
        return await self._channel.send(method, url, what=what, auth=self._auth, **kwargs)

    @staticmethod
    def _check(response: httpx.Response, what: str, *ok: int) -> None:
        status = response.status_code
        if status in (401, 403):
            raise CardDavAuthError(status, what)
        if status not in ok:
            raise CardDavHttpError(status, what)


def _translate(exc: TransportFailure | RetryExhausted) -> Exception:
    return CardDavError(str(exc))


def _multistatus(response: httpx.Response, what: str) -> list[DavResponse]:
    try:
        return parse_multistatus(response.content)
    except DavXmlError as exc:
        raise CardDavError(f"{what}: {exc}") from None


def _writable(book: DavResponse) -> bool:
    """Whether cards may be added and changed; a server that does not say is believed."""
    privileges = book.privileges()
    return privileges is None or bool(privileges & {"all", "write", "write-content", "bind"})


def _one(found: list[DavResponse]) -> DavResponse:
    if not found:
        raise CardDavError("CardDAV: empty multistatus")
    return found[0]
