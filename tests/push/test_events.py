"""Event payloads: RFC StateChange, Fastmail envelopes, pings, junk."""

from __future__ import annotations

import pytest

from mailroom.push.events import Ignored, Malformed, Ping, StateEvent, interpret
from mailroom.push.sse import Event


def ev(data: str, type_: str = "state") -> Event:
    return Event(type_, data, "")


def test_rfc_state_change() -> None:
    got = interpret(
        ev('{"@type":"StateChange","changed":{"A":{"Email":"5","Mailbox":"9","Thread":"1"}}}'), "A"
    )
    assert got == StateEvent({"Email": "5", "Mailbox": "9"}, snapshot=False)


def test_fastmail_envelope() -> None:
    assert interpret(ev('{"changed":{"A":{"Email":"5"}},"type":"connect"}'), "A") == StateEvent(
        {"Email": "5"}, snapshot=True
    )
    assert interpret(ev('{"changed":{"A":{"Mailbox":"2"}},"type":"change"}', "message"), "A") == (
        StateEvent({"Mailbox": "2"}, snapshot=False)
    )


@pytest.mark.parametrize(
    ("data", "interval"),
    [('{"interval":30}', 30.0), ('{"interval":30000}', 30.0), ("{}", None), ("x", None)],
)
def test_pings(data: str, interval: float | None) -> None:
    assert interpret(ev(data, "ping"), "A") == Ping(interval)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("{broken", "data is not JSON"),
        ("[1]", "data is not a JSON object"),
        ('{"x":1}', "no 'changed' object"),
        ('{"changed":{"A":[]}}', "account entry is not an object"),
        ('{"changed":{"A":{"Email":5}}}', "Email state is not a string"),
    ],
)
def test_malformed(data: str, reason: str) -> None:
    assert interpret(ev(data), "A") == Malformed(reason)


def test_ignored() -> None:
    assert isinstance(interpret(ev('{"changed":{"B":{"Email":"1"}}}'), "A"), Ignored)
    assert isinstance(interpret(ev('{"changed":{"A":{"Thread":"1"}}}'), "A"), Ignored)
    assert isinstance(interpret(ev("{}", "whatever"), "A"), Ignored)
    assert isinstance(interpret(ev('{"changed":{},"type":"bye"}'), "A"), Ignored)
