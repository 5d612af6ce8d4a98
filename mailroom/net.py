"""The HTTP shell the JMAP and CardDAV clients share: timeouts and polite retries.

Only 429 and 503 are retried: the server said it did not do the work. Waits
follow ``Retry-After`` when given (bounded), else 1 s, 2 s, 4 s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from mailroom.core.retry_after import parse_retry_after
from mailroom.core.transport import describe_transport_error

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
RETRY_STATUSES = frozenset({429, 503})


class TransportFailure(Exception):
    """The request never got an HTTP answer (refused, reset, timed out)."""

    def __init__(self, what: str, exc: Exception) -> None:
        super().__init__(f"{what}: {describe_transport_error(exc)}")


class RetryExhausted(Exception):
    """429/503 answers outlasted the retry budget."""

    def __init__(self, what: str, status: int, wait: float | None) -> None:
        hint = f", server asks to wait {wait:g} s" if wait is not None else ""
        super().__init__(f"{what}: HTTP {status} after retries{hint}")
        self.status = status
        self.wait = wait


async def send_with_retry(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    sleep: Sleep = asyncio.sleep,
    retries: int = 3,
    max_wait: float = 60.0,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request; retry 429/503 up to ``retries`` times."""
    attempt = 0
    while True:
        try:
            response = await http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise TransportFailure(what, exc) from None
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
