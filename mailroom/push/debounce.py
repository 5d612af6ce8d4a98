"""When to poll after push events: a trailing debounce with a maximum wait.

A burst of events becomes one poll ``delay`` seconds after the last of them;
a never-ending trickle still polls ``max_wait`` after the first. Never two
polls at once: events during a poll give exactly one follow-up poll. Pure:
the caller passes the time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Debouncer:
    delay: float
    max_wait: float
    first_at: float | None = None
    last_at: float | None = None
    running: bool = False
    events: int = 0  # relevant events received, for collapse statistics
    polls: int = 0  # polls these events triggered

    def event(self, now: float) -> None:
        self.events += 1
        if self.first_at is None:
            self.first_at = now
        self.last_at = now

    @property
    def pending(self) -> bool:
        return self.first_at is not None

    def due_at(self) -> float | None:
        """When the next push-triggered poll should start (None: nothing pending)."""
        if self.first_at is None or self.last_at is None or self.running:
            return None
        return min(self.last_at + self.delay, self.first_at + self.max_wait)

    def take(self, now: float) -> bool:
        """Start a poll if one is due; events from now on wait for the next."""
        due = self.due_at()
        if due is None or now < due:
            return False
        self.first_at = self.last_at = None
        self.polls += 1
        self.running = True
        return True

    def pass_began(self) -> None:
        """A poll started for another reason (timer, catch-up): it covers pending events."""
        self.first_at = self.last_at = None
        self.running = True

    def pass_finished(self) -> None:
        self.running = False
