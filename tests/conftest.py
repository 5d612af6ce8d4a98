"""Shared fixtures: a running stand-in and clients wired to it over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from mailroom.account.categories import DEFAULT_CATEGORIES_JSON, parse_categories
from mailroom.account.provisioning import Provisioner
from mailroom.carddav.book import CardDavBook
from mailroom.carddav.client import CardDavClient
from mailroom.contacts.book import Change, ContactBook, ContactKind, ContactsBackend, Known, Want
from mailroom.core.secret import Secret
from mailroom.jmap.client import JmapClient
from mailroom.jmap.contacts import JmapContactBook
from mailroom.triage.workflow import Triage, TriageConfig
from tests.faults import FaultySandbox
from tests.integration.servers import (  # noqa: F401  (fixtures for every test)
    any_cyrus,
    cyrus,
    cyrus_next,
    cyrus_short_timeout,
    cyrus_stock,
)

# Under pytest-xdist (``make test``), the tests of one Cyrus server run on one
# worker (``--dist loadgroup``), so each server starts once per run.
CYRUS_GROUPS = {
    "cyrus": "cyrus-3.6",
    "cyrus_short_timeout": "cyrus-3.6-short-timeout",
    "cyrus_stock": "cyrus-3.6-stock",
    "cyrus_next": "cyrus-3.13",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        if "any_cyrus" in names and callspec is not None:
            names.add(callspec.params["any_cyrus"])
        groups = sorted(CYRUS_GROUPS[n] for n in names if n in CYRUS_GROUPS)
        if groups:
            item.add_marker(pytest.mark.xdist_group(groups[0]))


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
def sandbox() -> Iterator[FaultySandbox]:
    with FaultySandbox(flavour="fastmail") as sb:
        sb.mail.ensure_mailbox("Screener")
        yield sb


@dataclass
class Harness:
    sandbox: FaultySandbox
    http: httpx.AsyncClient
    sleeps: Sleeps
    jmap: JmapClient
    carddav: CardDavClient
    book: ContactBook
    triage: Triage

    @property
    def mail(self):  # type: ignore[no-untyped-def]
        return self.sandbox.mail

    @property
    def contacts(self):  # type: ignore[no-untyped-def]
        return self.sandbox.contacts

    @property
    def backend(self) -> ContactsBackend:
        return self.book.backend


def make_clients(
    sb: FaultySandbox,
    http: httpx.AsyncClient,
    sleeps: Sleeps,
    backend: ContactsBackend = ContactsBackend.CARDDAV,
    *,
    base: str | None = None,
) -> tuple[JmapClient, CardDavClient, ContactBook, Triage]:
    """Clients of the stand-in; ``base``: reach it there instead (a proxy in front)."""
    url = base or sb.url
    jmap = JmapClient(http, url + "/jmap/session", Secret(sb.token), sleep=sleeps)
    carddav = CardDavClient(http, url, sb.username, Secret(sb.password), sleep=sleeps)
    book: ContactBook = (
        CardDavBook(carddav, sleep=sleeps)
        if backend is ContactsBackend.CARDDAV
        else JmapContactBook(jmap)
    )
    config = TriageConfig(parse_categories(DEFAULT_CATEGORIES_JSON), "Screener", "@MailroomError")
    return jmap, carddav, book, Triage(jmap, book, config)


async def open_harness(
    sb: FaultySandbox, http: httpx.AsyncClient, backend: ContactsBackend, *, base: str | None = None
) -> Harness:
    sleeps = Sleeps()
    jmap, carddav, book, triage = make_clients(sb, http, sleeps, backend, base=base)
    await ready(jmap, book, triage)
    return Harness(sb, http, sleeps, jmap, carddav, book, triage)


async def ready(jmap: JmapClient, book: ContactBook, triage: Triage) -> None:
    """Connect, make the account as `mailroom setup --apply --create-screener` does, set up."""
    await jmap.discover()
    await book.open()
    await Provisioner(jmap, book, triage.config).provision(create_screener=True)
    await triage.setup()


@pytest.fixture(params=[ContactsBackend.CARDDAV, ContactsBackend.JMAP], ids=["carddav", "jmap"])
async def harness(sandbox: FaultySandbox, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """Clients on the stand-in, once with each contacts backend."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield await open_harness(sandbox, http, request.param)


@pytest.fixture
async def dav_harness(sandbox: FaultySandbox) -> AsyncIterator[Harness]:
    """CardDAV only: for what only CardDAV has (ETags, 412 races)."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield await open_harness(sandbox, http, ContactsBackend.CARDDAV)


async def ensure_groups(book: ContactBook, names: list[str]) -> dict[str, str]:
    """Find the groups, creating those missing (what `mailroom setup --apply` does)."""
    found = await book.find_groups(names)
    for name in names:
        if name not in found:
            found[name] = await book.create_group(name)
    return await book.find_groups(names)


async def put_contact(
    book: ContactBook,
    address: str,
    name: str,
    kind: ContactKind,
    join: tuple[str, ...] = (),
    leave: tuple[str, ...] = (),
) -> Known:
    """One sender through lookup and apply, as a pass does; what the book then has."""
    want = Want(address, name, kind)
    lookup = await book.lookup([want])
    failed = await book.apply([Change(lookup.known[address], join, leave)])
    if failed:
        raise failed[address]
    return (await book.lookup([want])).known[address]
