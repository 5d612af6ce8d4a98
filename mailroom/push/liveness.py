"""Whether an open stream is alive, sans IO: the pings asked for and seen.

A server asked for ``ping=N`` must ping (RFC 8620 §7.3), so a stream silent
for two intervals (plus a margin) is dead. Some servers never ping (Fastmail
is reported not to): after enough connections silent without a single ping
this learns so, and liveness falls back to TCP keepalive and the missed-push
audit instead of dropping healthy streams for ever.
"""

from __future__ import annotations

import logging

from mailroom.push.messages import Report
from mailroom.push.policy import PushPolicy


class Liveness:
    def __init__(self, policy: PushPolicy) -> None:
        self.policy = policy
        self.last_activity = 0.0
        self.pinged = False  # this connection sent a ping
        self.server_pings: bool | None = None  # learned: None until known
        self.silent_strikes = 0  # consecutive connections silent without a ping
        self.ping_interval = float(policy.ping)

    def opened(self, now: float) -> None:
        self.last_activity = now
        self.pinged = False

    def heard(self, now: float) -> None:
        self.last_activity = now

    def deadline(self) -> float | None:
        """When the open stream counts as dead, unless the server is known not to ping."""
        if self.server_pings is False:
            return None
        return self.last_activity + 2 * self.ping_interval + self.policy.liveness_margin

    def ping(self, interval: float | None) -> None:
        self.pinged = True
        self.server_pings = True
        self.silent_strikes = 0
        # Bounded: an absurd interval must not switch liveness off.
        asked = float(self.policy.ping)
        self.ping_interval = min(max(interval or asked, 1.0), 4 * asked)

    def silent(self, now: float) -> Report | None:
        """The deadline passed: a report if this proves the server never pings
        (keep the stream), else ``None`` (drop it)."""
        if self.pinged or self.server_pings is not None:
            return None
        self.silent_strikes += 1
        if self.silent_strikes < self.policy.silent_strikes:
            return None
        self.server_pings = False
        return Report(
            logging.INFO,
            "the server sends no pings; relying on TCP keepalive and the missed-push audit",
            {"connections": self.silent_strikes},
        )

    def why_dead(self, now: float) -> str:
        silent = now - self.last_activity
        return f"stream silent for {silent:.0f} s (pings expected every {self.ping_interval:g} s)"
