"""Typed JMAP failures. Messages carry the server's words, never credentials."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mailroom.errors import ServerError


class JmapError(ServerError):
    """Base class for everything the JMAP client raises."""


class JmapTransportError(JmapError):
    """The server could not be reached or did not answer in time."""


class JmapProtocolError(JmapError):
    """The server's answer is not what RFC 8620 says it should be."""


class JmapAuthError(JmapError):
    """The server rejected the credentials (401) or the access (403)."""

    def __init__(self, status: int, what: str) -> None:
        reason = "rejected the token" if status == 401 else "refused access"
        super().__init__(f"{what}: server {reason} (HTTP {status})")
        self.status = status


class JmapHttpError(JmapError):
    """An HTTP status the client does not retry (or ran out of retries for)."""

    def __init__(self, status: int, what: str, detail: str = "") -> None:
        text = f"{what}: HTTP {status}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)
        self.status = status


class JmapRequestError(JmapError):
    """A request-level problem document (RFC 8620 §3.6.1)."""

    def __init__(self, type_: str, detail: str) -> None:
        super().__init__(f"request rejected: {type_}" + (f" ({detail})" if detail else ""))
        self.type = type_
        self.detail = detail


class JmapMethodError(JmapError):
    """A method-level ``error`` response (RFC 8620 §3.6.2)."""

    def __init__(self, method: str, type_: str, description: str | None) -> None:
        text = f"{method} failed: {type_}"
        if description:
            text += f" ({description})"
        super().__init__(text)
        self.method = method
        self.type = type_
        self.description = description


class JmapSetError(JmapError):
    """Some objects of a ``/set`` were not created, updated or destroyed."""

    def __init__(self, method: str, kind: str, failures: Mapping[str, Mapping[str, Any]]) -> None:
        self.method = method
        self.kind = kind  # notCreated | notUpdated | notDestroyed
        self.failures = {key: dict(value) for key, value in failures.items()}
        parts = []
        for key, err in list(self.failures.items())[:5]:
            part = f"{key}: {err.get('type', '?')}"
            if err.get("description"):
                part += f" ({err['description']})"
            parts.append(part)
        more = len(self.failures) - len(parts)
        tail = f" and {more} more" if more > 0 else ""
        super().__init__(f"{method} {kind} {len(self.failures)}: " + "; ".join(parts) + tail)
