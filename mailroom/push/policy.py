"""The push timings: one frozen record the core reads and tests shrink."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PushPolicy:
    poll_interval: float = 60.0  # the safety net: MAILROOM_POLL_INTERVAL
    debounce: float = 3.0  # MAILROOM_DEBOUNCE_SECONDS
    max_wait: float | None = None  # default: max(10 s, 5 x debounce)
    ping: int = 30  # asked of the server (RFC 8620 ping=N)
    liveness_margin: float = 10.0  # a stream is dead after 2 x ping + this (70 s)
    backoff_base: float = 1.0
    backoff_cap: float = 60.0  # also the cap on retry: and Retry-After
    healthy_after: float = 30.0
    degrade_after: float = 60.0
    degraded_poll_interval: float = 30.0
    missed_push_grace: float = 5.0
    open_timeout: float = 30.0  # until the stream's response headers
    pass_timeout: float = 120.0  # a whole pass; over it the pass is cancelled
    silent_strikes: int = 2  # connections silent without a ping before we learn

    @property
    def debounce_max_wait(self) -> float:
        return self.max_wait if self.max_wait is not None else max(10.0, 5 * self.debounce)

    @property
    def liveness_window(self) -> float:
        return 2 * self.ping + self.liveness_margin

    def clamp_floor(self, seconds: float | None) -> float | None:
        """A server's retry: or Retry-After, bounded to the backoff cap."""
        if seconds is None or seconds != seconds:  # None or NaN
            return None
        return min(max(0.0, seconds), self.backoff_cap)
