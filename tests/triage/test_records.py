"""Which JMAP states a pass counts as its own writes' echoes (pure)."""

from __future__ import annotations

from mailroom.jmap.wire import SetOutcome
from mailroom.push.jmap_states import StateTracker
from mailroom.triage.records import PassResult


def outcome(*written: tuple[str | None, str]) -> SetOutcome:
    return SetOutcome(written=list(written))


def test_a_chain_of_its_own_writes_is_its_own() -> None:
    result = PassResult(seen_states={"Email": "10"})
    result.record(outcome(("10", "11"), ("11", "12")))
    result.record(outcome(("12", "13")))
    assert result.own_states["Email"] == {"11", "12", "13"}
    assert not result.foreign_write


def test_a_change_by_another_client_mid_pass_is_never_taken_for_an_echo() -> None:
    """Found in CI on Cyrus 3.13: a user's label landed between two of the pass's
    writes; the next write's newState carried it, was counted as Mailroom's own,
    and the push that announced the label was dropped as an echo (the label then
    waited for the 5-minute safety net)."""
    result = PassResult(seen_states={"Email": "10"})
    result.record(outcome(("10", "11")))
    result.record(outcome(("12", "13"), ("13", "14")))  # 11 -> 12 was someone else
    assert result.own_states["Email"] == {"11"}
    assert result.foreign_write
    tracker = StateTracker()
    tracker.pass_saw(result.seen_states, result.own_states)
    assert tracker.push({"Email": "14"})  # news: another pass runs
    assert not tracker.push({"Email": "14"})  # once


def test_a_server_that_names_no_old_state_makes_no_echoes() -> None:
    result = PassResult(seen_states={"Email": "10"})
    result.record(outcome((None, "11")))
    assert result.own_states["Email"] == set()
