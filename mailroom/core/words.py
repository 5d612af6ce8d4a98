"""Counts in words: "1 sender", "3 senders" (no "1 senders" in the output)."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
