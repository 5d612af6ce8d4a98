"""Missed-push detection for servers that send no pings (Fastmail).

A silently dead stream looks exactly like a quiet mailbox. The safety-net
poll tells them apart: if it finds a state that moved and no push for that
type arrives within ``window`` seconds (the debounce plus a few), the push
was missed and the stream is presumed dead.
"""

from __future__ import annotations

from collections.abc import Mapping


class PushAudit:
    def __init__(self, window: float) -> None:
        self.window = window
        self._suspects: dict[str, float] = {}  # type -> when the poll saw it move

    def pass_saw(
        self,
        seen: Mapping[str, str],
        known_before: Mapping[str, str],
        own: Mapping[str, set[str]],
        now: float,
    ) -> None:
        for name, state in seen.items():
            if name not in known_before or state == known_before[name]:
                continue
            if state in own.get(name, set()):
                continue
            self._suspects.setdefault(name, now)

    def pushed(self, states: Mapping[str, str]) -> None:
        for name in states:
            self._suspects.pop(name, None)

    def deadline(self) -> float | None:
        return min(self._suspects.values()) + self.window if self._suspects else None

    def missed(self, now: float) -> bool:
        due = self.deadline()
        return due is not None and now >= due

    def clear(self) -> None:
        self._suspects.clear()
