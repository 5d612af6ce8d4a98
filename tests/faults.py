"""Fault switches a test flips on a running stand-in, and the stand-in that has them.

The stand-in reads its switches through :class:`mailroom.sandbox.switches.Switches`
(all off as shipped); here they are on a wire a test can pull.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from mailroom.sandbox.server import Sandbox
from mailroom.sandbox.switches import ForcedStatus, Route, Switches


@dataclass
class Faults(Switches):
    """Thread-safe switches, read by the server on every request.

    - ``drop``: accept connections and close them without an answer.
    - ``force(route, status)``: answer a route with a status (401, 429 …).
    - ``stream``: ``close`` ends each stream right after its headers (an
      accept-then-close server); ``silent`` keeps it open and sends nothing;
      ``flood`` sends comments, 64 KiB every 10 ms (state events still go
      out); ``close-after-event`` ends each stream cleanly right
      after its first state event, whatever ``closeafter`` asked (as Fastmail
      is reported to do).
    - ``malformed_events``: the next N state events carry broken JSON.
    - ``oversized_line``: the next stream write is one line of that many bytes.
    - ``retry_ms``: streams start with a ``retry:`` field.
    - ``stream_prefix``: raw text every stream starts with (absurd fields, garbage).
    - ``event_id``: the ``id:`` the ``rfc`` flavour gives every state event
      (an absurd one, say), instead of its own.
    - ``trickle``: answers of the delayed route (or all) go out 64 bytes at a
      time, this many seconds apart.
    - ``delay``: seconds to wait before answering a request (of ``delay_route``
      only, when set).
    - ``huge_answer``: the next answer (of ``delay_route`` only, when set)
      trails that many bytes of whitespace, with no Content-Length, until the
      client hangs up: an answer of absurd size.
    """

    # And those of Switches: drop, stream, retry_ms, stream_prefix, event_id,
    # trickle, delay, delay_route.
    malformed_events: int = 0
    oversized_line: int = 0
    huge_answer: int = 0
    _forced: dict[str, ForcedStatus] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def force(
        self,
        route: Route,
        status: int,
        headers: dict[str, str] | None = None,
        times: int | None = None,
    ) -> None:
        with self._lock:
            self._forced[route] = ForcedStatus(status, dict(headers or {}), times)

    def clear(self, route: Route | None = None) -> None:
        with self._lock:
            if route is None:
                self._forced.clear()
            else:
                self._forced.pop(route, None)

    def take_forced(self, route: Route) -> ForcedStatus | None:
        with self._lock:
            forced = self._forced.get(route)
            if forced is None:
                return None
            if forced.remaining is not None:
                forced.remaining -= 1
                if forced.remaining <= 0:
                    del self._forced[route]
            return forced

    def take_malformed(self) -> bool:
        with self._lock:
            if self.malformed_events > 0:
                self.malformed_events -= 1
                return True
            return False

    def take_oversized(self) -> int:
        with self._lock:
            size, self.oversized_line = self.oversized_line, 0
            return size

    def take_huge(self) -> int:
        with self._lock:
            size, self.huge_answer = self.huge_answer, 0
            return size

    def reset(self) -> None:
        with self._lock:
            self.drop = False
            self.stream = "normal"
            self.malformed_events = 0
            self.oversized_line = 0
            self.retry_ms = None
            self.stream_prefix = None
            self.event_id = None
            self.trickle = 0.0
            self.delay = 0.0
            self.delay_route = None
            self.huge_answer = 0
            self._forced.clear()


class FaultySandbox(Sandbox):
    """A stand-in whose fault switches a test can flip while it runs."""

    faults: Faults

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.faults = Faults()
