"""What the open stream's items mean, sans IO.

State changes go out to the scheduler; pings to :mod:`mailroom.push.liveness`;
each event's id is kept to resume from (``Last-Event-ID``) unless the server
should never have sent it; ``retry:`` sets a floor under reconnects; broken
items are counted and logged, without flooding the log.
"""

from __future__ import annotations

import logging

from mailroom.core.vocabulary import ItemKind
from mailroom.push.events import Ignored, Malformed, Ping, StateEvent, interpret
from mailroom.push.liveness import Liveness
from mailroom.push.messages import Action, CountItem, Report
from mailroom.push.policy import PushPolicy
from mailroom.push.sse import Comment, Event, IdCleared, Invalid, Item, Oversized, Retry

MALFORMED_LOGGED = 10  # then DEBUG: a broken server can send thousands
MAX_EVENT_ID = 256  # characters of Last-Event-ID sent back


def usable_event_id(value: str) -> bool:
    """Whether an id can go back as ``Last-Event-ID``: short, printable ASCII (or empty)."""
    return len(value) <= MAX_EVENT_ID and all(" " <= ch <= "~" for ch in value)


class StreamReading:
    def __init__(self, policy: PushPolicy, account_id: str, liveness: Liveness) -> None:
        self.policy = policy
        self.account_id = account_id  # whose state changes matter
        self.liveness = liveness
        self.last_event_id = ""
        self.refused_event_id = ""  # the last id not kept (counted once)
        self.retry_floor: float | None = None  # from the server's retry: field
        self.delivered_change = False  # this connection pushed a change
        self.malformed_logged = 0

    def item(self, item: Item, out: list[Action]) -> dict[str, str] | None:
        match item:
            case Event():
                # Only a later event's id replaces the one we resume from; one
                # the server should never have sent is not kept.
                if item.last_event_id and item.last_event_id not in (
                    self.last_event_id,
                    self.refused_event_id,
                ):
                    if usable_event_id(item.last_event_id):
                        self.last_event_id = item.last_event_id
                    else:
                        self.last_event_id = ""
                        self.refused_event_id = item.last_event_id
                        self.malformed("id: not a short printable ASCII token", out)
                return self._event(item, out)
            case IdCleared():
                self.last_event_id = ""  # the server resets where to resume from
            case Comment():
                out.append(CountItem(ItemKind.COMMENT))
            case Retry(milliseconds=ms):
                out.append(CountItem(ItemKind.RETRY))
                self.retry_floor = self.policy.clamp_floor(ms / 1000)
            case Invalid(field=name, reason=reason):
                self.malformed(f"{name}: {reason}", out)
            case Oversized(what=what):
                out.append(CountItem(ItemKind.OVERSIZED))
                out.append(Report(logging.WARNING, f"dropped an oversized stream {what}"))
        return None

    def _event(self, event: Event, out: list[Action]) -> dict[str, str] | None:
        meaning = interpret(event, self.account_id, asked_ping=self.policy.ping)
        match meaning:
            case StateEvent(states=states, snapshot=snapshot):
                out.append(CountItem(ItemKind.STATE))
                self.delivered_change = self.delivered_change or not snapshot
                return states
            case Ping(interval=interval):
                out.append(CountItem(ItemKind.PING))
                self.liveness.ping(interval)
            case Malformed(reason=reason):
                self.malformed(reason, out)
            case Ignored(reason=reason):
                out.append(CountItem(ItemKind.IGNORED))
                out.append(Report(logging.DEBUG, "ignored event", {"reason": reason}))
        return None

    def malformed(self, reason: str, out: list[Action]) -> None:
        out.append(CountItem(ItemKind.MALFORMED))
        self.malformed_logged += 1
        level = logging.WARNING if self.malformed_logged <= MALFORMED_LOGGED else logging.DEBUG
        out.append(Report(level, "malformed stream item ignored", {"reason": reason}))
