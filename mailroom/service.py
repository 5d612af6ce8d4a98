"""The running service: clients, start-up, and the loop that decides when to poll."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable

import httpx

from mailroom.carddav.addressbook import AddressBook
from mailroom.carddav.client import CardDavAuthError, CardDavClient, CardDavError
from mailroom.carddav.vcard import VCardError
from mailroom.jmap.client import JmapClient
from mailroom.jmap.errors import JmapAuthError, JmapError
from mailroom.net import DEFAULT_TIMEOUT
from mailroom.settings import Settings
from mailroom.triage.workflow import PollResult, SetupError, Triage, TriageConfig

log = logging.getLogger(__name__)

REMOTE_ERRORS = (JmapError, CardDavError, VCardError, SetupError)
AUTH_RETRY_SECONDS = 300.0  # rejected credentials: retry slowly, never hammer
STARTUP_BACKOFF_CAP = 60.0


def is_auth_error(exc: BaseException) -> bool:
    return isinstance(exc, JmapAuthError | CardDavAuthError)


class Service:
    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.jmap = JmapClient(http, settings.jmap_session_url, settings.jmap_token)
        self.carddav = CardDavClient(
            http, settings.carddav_url, settings.carddav_username, settings.carddav_password
        )
        self.triage = Triage(
            self.jmap,
            AddressBook(self.carddav),
            TriageConfig(settings.categories, settings.screener_mailbox, settings.error_label),
        )

    async def start(self, stop: asyncio.Event) -> bool:
        """Discover servers and set up mailboxes and groups; retry remote failures.

        Returns False if asked to stop before start-up succeeded.
        """
        attempt = 0
        while not stop.is_set():
            try:
                await self.jmap.discover()
                await self.carddav.discover()
                await self.triage.setup()
                log.info("started", extra={"fields": {"categories": len(self.settings.categories)}})
                return True
            except REMOTE_ERRORS as exc:
                delay = (
                    AUTH_RETRY_SECONDS
                    if is_auth_error(exc)
                    else min(STARTUP_BACKOFF_CAP, 2.0**attempt)
                )
                attempt += 1
                log.error(
                    "start-up failed; retrying",
                    extra={"fields": {"error": str(exc), "retry_in": delay}},
                )
                await wait_or_stop(stop, delay)
        return False

    async def poll(self, trigger: str) -> PollResult | None:
        """One triage pass, logged with its trigger; None if it failed."""
        started = self.clock()
        try:
            result = await self.triage.poll()
        except REMOTE_ERRORS as exc:
            log.error(
                "poll failed",
                extra={
                    "fields": {
                        "trigger": trigger,
                        "error": str(exc),
                        "duration": round(self.clock() - started, 3),
                    }
                },
            )
            return None
        log.info(
            "poll finished",
            extra={
                "fields": {
                    "trigger": trigger,
                    "senders": result.senders_triaged,
                    "emails_refiled": result.emails_refiled,
                    "conflicts": result.conflicts,
                    "failures": result.failures,
                    "duration": round(self.clock() - started, 3),
                }
            },
        )
        return result

    async def run(self, stop: asyncio.Event) -> None:
        """Poll at start, then every poll interval, until ``stop`` is set."""
        if not await self.start(stop):
            return
        trigger = "startup"
        while not stop.is_set():
            await self.poll(trigger)
            trigger = "fallback"
            await wait_or_stop(stop, self.settings.poll_interval)
        log.info("stopped")


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run_until_signalled(settings: Settings) -> int:
    """Run the service until SIGTERM or SIGINT; an in-flight poll is finished."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with httpx.AsyncClient(timeout=DEFAULT_TIMEOUT) as http:
        await Service(settings, http).run(stop)
    return 0
