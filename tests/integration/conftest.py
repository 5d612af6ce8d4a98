"""Integration fixtures: real Cyrus servers, started once per need.

Locally, when Cyrus cannot be started (not root, no apt), these tests skip
with one line saying why. Under CI (CI=true) they must run: a skip is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.integration.cyrus import Cyrus, CyrusUnavailable

IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


def _start(name: str, **settings: str) -> Cyrus:
    try:
        return Cyrus.start(name, **settings)
    except CyrusUnavailable as exc:
        if IN_CI:
            pytest.fail(f"Cyrus is required under CI but could not start: {exc}")
        pytest.skip(f"Cyrus not available here: {exc}")


def _serve(name: str, **settings: str) -> Iterator[Cyrus]:
    server = _start(name, **settings)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cyrus() -> Iterator[Cyrus]:
    yield from _serve("main")


@pytest.fixture(scope="session")
def cyrus_short_timeout() -> Iterator[Cyrus]:
    """Cyrus closing every stream after 1 minute (httptimeout)."""
    yield from _serve("short", CYRUS_HTTPTIMEOUT="1")


@pytest.fixture(scope="session")
def cyrus_stock() -> Iterator[Cyrus]:
    """The stock Debian httpd: EventSource answers 204 to everything."""
    yield from _serve("stock", CYRUS_EVENTSOURCE_PATCH="0")
