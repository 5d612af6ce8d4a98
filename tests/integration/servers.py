"""Fixtures starting the real Cyrus servers, once per test session each.

Locally, when a Cyrus cannot be started (not root, no apt), the tests that
need it skip with one line saying why. Under CI (CI=true) they must run: a
skip is a failure. Registered for every test in ``tests/conftest.py``, so
tests outside ``tests/integration`` (the contract pins) can ask for them too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.integration.cyrus import CYRUS_36, CYRUS_NEXT, Build, Cyrus, CyrusUnavailable

IN_CI = os.environ.get("CI", "").lower() == "true"


def _start(name: str, build: Build, settings: dict[str, str]) -> Cyrus:
    try:
        return Cyrus.start(name, settings, build)
    except CyrusUnavailable as exc:
        if IN_CI:
            pytest.fail(f"Cyrus {build.name} is required under CI but could not start: {exc}")
        pytest.skip(f"Cyrus {build.name} not available here: {exc}")


def _serve(name: str, build: Build = CYRUS_36, **settings: str) -> Iterator[Cyrus]:
    server = _start(name, build, settings)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cyrus() -> Iterator[Cyrus]:
    yield from _serve("main")


@pytest.fixture(scope="session")
def cyrus_next() -> Iterator[Cyrus]:
    """Cyrus 3.13-dev: RFC 9610 JMAP Contacts, the closest thing to Fastmail's server here."""
    yield from _serve("next", CYRUS_NEXT)


@pytest.fixture(scope="session")
def cyrus_short_timeout() -> Iterator[Cyrus]:
    """Cyrus closing every stream after 1 minute (httptimeout)."""
    yield from _serve("short", CYRUS_HTTPTIMEOUT="1")


@pytest.fixture(scope="session")
def cyrus_stock() -> Iterator[Cyrus]:
    """The stock Debian httpd: EventSource answers 204 to everything."""
    yield from _serve("stock", CYRUS_EVENTSOURCE_PATCH="0")


@pytest.fixture(params=["cyrus", "cyrus_next"], ids=["3.6-carddav", "3.13-jmap-contacts"])
def any_cyrus(request: pytest.FixtureRequest) -> Cyrus:
    """Each Cyrus build with its contacts backend: CardDAV on 3.6, JMAP contacts on 3.13-dev."""
    server: Cyrus = request.getfixturevalue(request.param)
    return server
