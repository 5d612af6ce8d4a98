"""Cutting work to a server's limits: pure helpers both clients share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

# Conditions in one OR filter (JMAP) or one addressbook-query (CardDAV): a
# pass of thousands of senders is several modest queries, not one huge one.
MAX_OR_CONDITIONS = 100


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` in consecutive lists of at most ``size`` (at least 1)."""
    size = max(1, size)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
