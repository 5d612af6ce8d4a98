"""Shared fixtures: a running stand-in and clients wired to it over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from mailroom.carddav.addressbook import AddressBook
from mailroom.carddav.client import CardDavClient
from mailroom.core.secret import Secret
from mailroom.jmap.client import JmapClient
from mailroom.sandbox.server import Sandbox
from mailroom.triage.categories import DEFAULT_CATEGORIES_JSON, parse_categories
from mailroom.triage.workflow import Triage, TriageConfig


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Sleeps:
    """An injected sleep: records what would have been waited, waits nothing."""

    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(flavour="fastmail") as sb:
        sb.mail.ensure_mailbox("Screener")
        yield sb


@dataclass
class Harness:
    sandbox: Sandbox
    http: httpx.AsyncClient
    sleeps: Sleeps
    jmap: JmapClient
    carddav: CardDavClient
    book: AddressBook
    triage: Triage

    @property
    def mail(self):  # type: ignore[no-untyped-def]
        return self.sandbox.mail

    @property
    def contacts(self):  # type: ignore[no-untyped-def]
        return self.sandbox.contacts


def make_clients(
    sb: Sandbox, http: httpx.AsyncClient, sleeps: Sleeps
) -> tuple[JmapClient, CardDavClient, AddressBook, Triage]:
    jmap = JmapClient(http, sb.session_url, Secret(sb.token), sleep=sleeps)
    carddav = CardDavClient(http, sb.url, sb.username, Secret(sb.password), sleep=sleeps)
    book = AddressBook(carddav, sleep=sleeps)
    config = TriageConfig(parse_categories(DEFAULT_CATEGORIES_JSON), "Screener", "@MailroomError")
    return jmap, carddav, book, Triage(jmap, book, config)


@pytest.fixture
async def harness(sandbox: Sandbox) -> AsyncIterator[Harness]:
    sleeps = Sleeps()
    async with httpx.AsyncClient(timeout=10.0) as http:
        jmap, carddav, book, triage = make_clients(sandbox, http, sleeps)
        await jmap.discover()
        await carddav.discover()
        await triage.provision(create_screener=True)
        await triage.setup()
        yield Harness(sandbox, http, sleeps, jmap, carddav, book, triage)
