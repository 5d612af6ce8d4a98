"""The HTTP layer the JMAP and CardDAV clients share.

One ``api_client()`` for the API calls (timeouts, keep-alive across the
poll interval), and one ``Channel`` per server: request counting, polite
retries and the translation of transport failures into the client's own
error types. Only 429 and 503 are retried on an answer (the server said it
did not do the work), waiting as ``Retry-After`` says (bounded) or 1, 2, 4 s.
A kept-alive connection the server closed while idle is retried once on a
fresh one (that is how httpx learns it was closed), but only for a request
that is safe to repeat: a repeated create could make a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from mailroom.core.retry_after import parse_retry_after
from mailroom.core.transport import describe_transport_error
from mailroom.errors import ServerError

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
RETRY_STATUSES = frozenset({429, 503})
# httpx drops idle connections after 5 s by default: every safety-net pass
# would pay a new TCP and TLS handshake. Keep them past the poll interval;
# a server that closes sooner is met with a fresh connection.
KEEPALIVE_MARGIN = 30.0
# The most of one answer read into memory: past it the answer is abandoned.
# A client tightens or widens it from what the server advertises.
DEFAULT_MAX_BODY = 16 * 1024 * 1024


def api_client(poll_interval: float = 60.0) -> httpx.AsyncClient:
    """The HTTP client for API calls: keeps its connection across the poll interval."""
    return httpx.AsyncClient(
        timeout=DEFAULT_TIMEOUT,
        limits=httpx.Limits(
            max_connections=8,
            max_keepalive_connections=4,
            keepalive_expiry=poll_interval + KEEPALIVE_MARGIN,
        ),
    )


def discovered(value: T | None, step: str) -> T:
    """``value``, or a clear error when the discovery that sets it has not run."""
    if value is None:
        raise RuntimeError(f"{step} has not run")
    return value


class TransportFailure(ServerError):
    """The request never got an HTTP answer (refused, reset, timed out)."""

    def __init__(self, what: str, exc: Exception) -> None:
        super().__init__(f"{what}: {describe_transport_error(exc)}")


class ResponseTooLarge(TransportFailure):
    """An answer larger than the cap: abandoned unread, never held in memory."""

    def __init__(self, what: str, url: str, limit: int) -> None:
        Exception.__init__(
            self,
            f"{what}: the answer from {httpx.URL(url).host} is larger than "
            f"{limit // (1024 * 1024)} MiB; abandoned",
        )


class RetryExhausted(ServerError):
    """429/503 answers outlasted the retry budget."""

    def __init__(self, what: str, status: int, wait: float | None) -> None:
        hint = f", server asks to wait {wait:g} s" if wait is not None else ""
        super().__init__(f"{what}: HTTP {status} after retries{hint}")
        self.what = what
        self.status = status
        self.wait = wait


Translate = Callable[[TransportFailure | RetryExhausted], Exception]


class Channel:
    """One server's HTTP: counted, retried, failures in the client's own words."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        translate: Translate,
        *,
        sleep: Sleep = asyncio.sleep,
        retries: int = 3,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self._http = http
        self._translate = translate
        self._sleep = sleep
        self._retries = retries
        self.max_body = max_body
        self.requests_made = 0

    async def send(
        self, method: str, url: str, *, what: str, repeatable: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """One request. ``repeatable``: sending it twice does no harm."""
        self.requests_made += 1
        try:
            return await send_with_retry(
                self._http,
                method,
                url,
                what=what,
                sleep=self._sleep,
                retries=self._retries,
                repeatable=repeatable,
                max_body=self.max_body,
                **kwargs,
            )
        except (TransportFailure, RetryExhausted) as exc:
            raise self._translate(exc) from None


async def send_with_retry(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    sleep: Sleep = asyncio.sleep,
    retries: int = 3,
    max_wait: float = 60.0,
    repeatable: bool = True,
    max_body: int = DEFAULT_MAX_BODY,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request; retry 429/503 up to ``retries`` times.

    The answer is read as a stream and abandoned past ``max_body`` bytes.
    """
    attempt = 0
    stale_retried = False
    # What httpx takes when sending rather than when building a request.
    auth = kwargs.pop("auth", httpx.USE_CLIENT_DEFAULT)
    while True:
        try:
            request = http.build_request(method, url, **kwargs)
            response = await _bounded(http, request, max_body, auth)
        except httpx.RemoteProtocolError as exc:
            # "Server disconnected without sending a response": a kept-alive
            # connection closed while idle. Once, on a new connection.
            if stale_retried or not repeatable:
                raise TransportFailure(what, exc) from None
            stale_retried = True
            continue
        except httpx.TransportError as exc:
            raise TransportFailure(what, exc) from None
        except _TooLarge:
            raise ResponseTooLarge(what, url, max_body) from None
        if response.status_code not in RETRY_STATUSES:
            return response
        wait = parse_retry_after(response.headers.get("Retry-After"))
        if attempt >= retries or (wait is not None and wait > max_wait):
            raise RetryExhausted(what, response.status_code, wait)
        delay = wait if wait is not None else float(2**attempt)
        log.info(
            "server busy, retrying",
            extra={"fields": {"what": what, "status": response.status_code, "wait": delay}},
        )
        attempt += 1
        await sleep(delay)


class _TooLarge(Exception):
    pass


async def _bounded(
    http: httpx.AsyncClient, request: httpx.Request, limit: int, auth: Any
) -> httpx.Response:
    """The answer to ``request``, its body read up to ``limit`` bytes."""
    response = await http.send(request, stream=True, auth=auth)
    try:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _TooLarge
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise _TooLarge
    finally:
        await response.aclose()
    # The body is already decoded: the new answer must not decode it again.
    headers = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code, headers=headers, content=bytes(body), request=request
    )
