"""Reconnection delays: exponential, jittered, capped, with server floors.

1 s, 2 s, 4 s … up to 60 s, each shortened by up to 20 % at random so
instances restarted together spread out (never above the cap). A server's
``retry:`` field and ``Retry-After`` are floors. The attempt counter resets
only after a connection stayed healthy for ``healthy_after`` seconds, so a
server that accepts and closes at once keeps the delays growing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 1.0
    cap: float = 60.0
    jitter: float = 0.2
    healthy_after: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self, floor: float | None = None) -> float:
        raw = min(self.cap, self.base * 2.0**self.attempt)
        self.attempt += 1
        delay = raw * (1.0 - self.jitter * self.rng.random())
        return max(delay, floor or 0.0)

    def at_cap(self, floor: float | None = None) -> float:
        """A delay at the cap (jittered): for retries while push is unavailable."""
        return max(self.cap * (1.0 - self.jitter * self.rng.random()), floor or 0.0)

    def connection_ended(self, lasted: float) -> None:
        if lasted >= self.healthy_after:
            self.attempt = 0
