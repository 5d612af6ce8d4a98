"""Which pushed states are news: not seen by a poll, not made by Mailroom itself.

JMAP states are opaque strings, so the only sound test is equality: a state is
news when it differs from the last one known for its type AND from every state
Mailroom's own writes produced (their ``newState``). A Fastmail ``connect``
snapshot, or the first event after a reconnect, goes through the same test.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

OWN_STATES_KEPT = 256


class StateTracker:
    def __init__(self) -> None:
        self.known: dict[str, str] = {}
        self._own: dict[str, deque[str]] = {}

    def is_news(self, states: Mapping[str, str]) -> bool:
        return any(
            self.known.get(name) != state and state not in self._own.get(name, ())
            for name, state in states.items()
        )

    def push(self, states: Mapping[str, str]) -> bool:
        """Record pushed states; True if they call for a poll."""
        news = self.is_news(states)
        self.known.update(states)
        return news

    def pass_saw(self, seen: Mapping[str, str], own: Mapping[str, set[str]]) -> None:
        """A poll saw ``seen`` (when it started) and its writes produced ``own``."""
        for name, values in own.items():
            kept = self._own.setdefault(name, deque(maxlen=OWN_STATES_KEPT))
            kept.extend(sorted(values))
        self.known.update(seen)
