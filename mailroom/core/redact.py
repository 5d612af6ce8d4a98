"""Scrubbing configured secrets from any text that leaves the process.

Secrets are held as :class:`~mailroom.core.secret.Secret` and never printed on
purpose; this is the defence in depth for the accidents: a library that puts a
header in an exception message, a traceback, a server echoing a credential.
Every log line, /health body, systemd status and failure message goes
through :func:`scrub`.
"""

from __future__ import annotations

import base64
import threading

MASK = "********"
MIN_LENGTH = 4  # shorter values would mask ordinary words

_lock = threading.Lock()
_secrets: set[str] = set()


def register(value: str, *, username: str | None = None) -> None:
    """Remember ``value`` (and its Basic-auth form with ``username``) to scrub."""
    if len(value) < MIN_LENGTH:
        return
    forms = {value}
    if username is not None:
        forms.add(base64.b64encode(f"{username}:{value}".encode()).decode())
    with _lock:
        _secrets.update(forms)


def forget_all() -> None:
    with _lock:
        _secrets.clear()


def scrub(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text
