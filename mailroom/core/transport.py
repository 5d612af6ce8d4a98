"""Naming a transport failure for a person (pure: formats an exception)."""

from __future__ import annotations


def describe_transport_error(exc: BaseException) -> str:
    # httpx messages can be empty; the class name still says what happened.
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
