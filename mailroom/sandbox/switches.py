"""Where a test bends the stand-in's answers, read on every request.

The stand-in as shipped answers as a server does: every switch here is off
and stays off. The switches themselves (forcing a status, dropping
connections, flooding or silencing the stream, delays, absurd answers) and
the code that flips them live with the tests (``tests/faults.py``), which
give a stand-in their own :class:`Switches`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Route = Literal["session", "api", "eventsource", "carddav"]
StreamMode = Literal["normal", "close", "silent", "flood", "close-after-event"]


@dataclass
class ForcedStatus:
    status: int
    headers: dict[str, str]
    remaining: int | None  # None: until cleared


@dataclass
class Switches:
    """All off: connections answered, streams normal, nothing forced or delayed."""

    drop: bool = False
    stream: StreamMode = "normal"
    retry_ms: int | None = None
    stream_prefix: str | None = None
    event_id: str | None = None
    trickle: float = 0.0
    delay: float = 0.0
    delay_route: Route | None = None

    def take_forced(self, route: Route) -> ForcedStatus | None:
        return None

    def take_malformed(self) -> bool:
        return False

    def take_oversized(self) -> int:
        return 0

    def take_huge(self) -> int:
        return 0
