"""What the push core is told (messages) and what it asks for (actions).

Messages come from the stream reader, the pass runner and the clock; the
asyncio supervisor turns actions into tasks, cancellations and telemetry.
Both are frozen dataclasses in closed unions, dispatched with ``match``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mailroom.core.vocabulary import FailureKind, ItemKind, Trigger
from mailroom.push.sse import Item

# Refusals: the server says push is not available here, retrying fast is useless.
REFUSED_STATUSES = frozenset({204, 400, 401, 403, 404, 405, 501})
AUTH_STATUSES = frozenset({401, 403})

# -- messages ---------------------------------------------------------------------


@dataclass(frozen=True)
class StreamOpened:
    conn: int


@dataclass(frozen=True)
class StreamItem:
    conn: int
    item: Item
    # Items of the same kind the reader folded into this one (a flood of
    # comments or pings proves liveness once): counted, not handled.
    folded: int = 0


@dataclass(frozen=True)
class StreamRefused:
    """The server says push is not available (204, 400, 401, 403 …)."""

    conn: int
    status: int
    reason: str

    @property
    def auth(self) -> bool:
        return self.status in AUTH_STATUSES


@dataclass(frozen=True)
class StreamFailed:
    """The attempt or the open stream failed (transport error, 5xx, decoding …)."""

    conn: int
    reason: str
    retry_after: float | None = None
    bad_retry_after: bool = False  # a Retry-After that was neither a delay nor a date


@dataclass(frozen=True)
class StreamEnded:
    """The response body ended: cleanly (``error`` None) or broken."""

    conn: int
    error: str | None = None


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    message: str
    rejected_by: str | None = None  # "JMAP (HTTP 401)", "CardDAV (HTTP 403)"


@dataclass(frozen=True)
class PassFinished:
    trigger: Trigger
    failure: Failure | None = None
    # States the pass saw when it scanned, and those its own writes produced.
    seen_states: Mapping[str, str] = field(default_factory=dict)
    own_states: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True)
class Tick:
    """Time passed (a deadline came): nothing else happened."""


StreamMessage = StreamOpened | StreamItem | StreamRefused | StreamFailed | StreamEnded
Message = StreamMessage | PassFinished | Tick

# -- actions ----------------------------------------------------------------------


@dataclass(frozen=True)
class OpenStream:
    conn: int
    refresh: bool  # push was unavailable: discover the session again first
    last_event_id: str


@dataclass(frozen=True)
class CancelStream:
    conn: int


@dataclass(frozen=True)
class StartPass:
    trigger: Trigger


@dataclass(frozen=True)
class CancelPass:
    """The pass in flight is over its deadline."""


@dataclass(frozen=True)
class CountItem:
    kind: ItemKind
    n: int = 1


@dataclass(frozen=True)
class MissedPush:
    pass


@dataclass(frozen=True)
class Collapsed:
    """A push event was absorbed into an already scheduled pass."""


@dataclass(frozen=True)
class StreamAuth:
    rejected_by: str | None  # None: the stream accepted the credentials again


@dataclass(frozen=True)
class Report:
    """A line for the log (the core itself does no IO)."""

    level: int
    message: str
    fields: Mapping[str, object] = field(default_factory=dict)


Notice = CountItem | MissedPush | Collapsed | StreamAuth | Report
Action = OpenStream | CancelStream | StartPass | CancelPass | Notice
