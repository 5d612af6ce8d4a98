"""What a JMAP EventSource event means (RFC 8620 §7.1, and Fastmail's envelope).

RFC servers send ``{"@type":"StateChange","changed":{acct:{Type:state}}}``;
Fastmail sends ``{"changed":{…},"type":"connect"|"change"}`` and its first
event after connecting is a snapshot of every state. Unknown keys, accounts,
types and event names are ignored; anything unreadable is Malformed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mailroom.core.vocabulary import WATCHED_TYPES
from mailroom.push.sse import Event


@dataclass(frozen=True)
class StateEvent:
    states: dict[str, str]  # watched type -> state, for our account only
    snapshot: bool  # Fastmail's "connect": current states, not proof of change


@dataclass(frozen=True)
class Ping:
    interval: float | None  # seconds, when the server said


@dataclass(frozen=True)
class Malformed:
    reason: str


@dataclass(frozen=True)
class Ignored:
    reason: str


Meaning = StateEvent | Ping | Malformed | Ignored


def interpret(event: Event, account_id: str, *, asked_ping: int = 30) -> Meaning:
    if event.type == "ping":
        return Ping(_ping_interval(event.data, asked_ping))
    if event.type not in ("state", "message"):
        return Ignored(f"event type {event.type[:40]!r}")
    try:
        data = json.loads(event.data)
    except (json.JSONDecodeError, RecursionError):
        return Malformed("data is not JSON")
    if not isinstance(data, dict):
        return Malformed("data is not a JSON object")
    changed = data.get("changed")
    if not isinstance(changed, dict):
        return Malformed("no 'changed' object")
    kind = data.get("type")
    if kind is not None and kind not in ("connect", "change"):
        return Ignored(f"envelope type {str(kind)[:40]!r}")
    account = changed.get(account_id)
    if account is None:
        return Ignored("another account")
    if not isinstance(account, dict):
        return Malformed("account entry is not an object")
    states: dict[str, str] = {}
    for name in WATCHED_TYPES:
        value = account.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            return Malformed(f"{name} state is not a string")
        states[name] = value
    if not states:
        return Ignored("no watched type changed")
    return StateEvent(states, snapshot=kind == "connect")


def _ping_interval(data: str, asked: int) -> float | None:
    try:
        value = json.loads(data).get("interval")
    except (json.JSONDecodeError, AttributeError, RecursionError):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    # Stalwart reports milliseconds; nobody asks for pings every 1000+ seconds.
    if value >= 1000 and value / 1000 <= asked * 2:
        return float(value) / 1000
    return float(value)
