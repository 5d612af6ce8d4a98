"""The /health verdict, from plain records."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mailroom.observe.health import HealthRecord, evaluate, http_status


def verdict(record: HealthRecord, now: float, interval: float = 60) -> tuple[str, dict[str, Any]]:
    """The verdict at ``now``, with both clocks agreeing (no step)."""
    clocks = replace(
        record, started_clock=record.started_at, success_clock=record.last_poll_success_at
    )
    return evaluate(clocks, now, interval, "1.0")


def test_pass_when_connected_and_polling() -> None:
    r = HealthRecord(
        started_at=1000,
        eventsource_state="connected",
        connected_since=1000,
        last_poll_success_at=1100,
        last_trigger="push",
    )
    status, body = verdict(r, 1150)
    assert status == "pass" and http_status(status) == 200
    assert body["eventsource"] == {
        "status": "connected",
        "connected_since": "1970-01-01T00:16:40Z",
        "last_event_at": None,
        "reconnect_count": 0,
        "last_error": None,
    }
    assert body["polling"] == {
        "last_success_at": "1970-01-01T00:18:20Z",
        "last_trigger": "push",
        "consecutive_failures": 0,
        "last_error": None,
        "interval_seconds": 60,
    }


def test_warn_when_push_is_down_but_polling_works() -> None:
    r = HealthRecord(
        started_at=0,
        eventsource_state="degraded",
        last_poll_success_at=100,
        last_error="EventSource answered HTTP 204",
    )
    status, body = verdict(r, 110)
    assert (status, http_status(status)) == ("warn", 200)
    assert body["eventsource"]["last_error"] == "EventSource answered HTTP 204"


def test_start_up_grace_then_fail_without_polls() -> None:
    r = HealthRecord(started_at=0, eventsource_state="connecting")
    assert verdict(r, 119)[0] == "warn"
    status, body = verdict(r, 121)
    assert (status, http_status(status)) == ("fail", 503)
    assert "no successful poll" in str(body["output"])


def test_fail_when_last_success_is_old_or_polls_keep_failing_or_auth() -> None:
    base = HealthRecord(started_at=0, eventsource_state="connected", last_poll_success_at=1000)
    assert verdict(base, 1121)[0] == "fail"
    assert verdict(replace(base, consecutive_failures=3), 1001)[0] == "fail"
    assert verdict(replace(base, consecutive_failures=2), 1001)[0] == "pass"
    status, body = verdict(replace(base, auth_rejected="JMAP (HTTP 401)"), 1001)
    assert status == "fail"
    assert body["output"] == "credentials rejected by JMAP (HTTP 401)"


def test_fail_naming_what_the_account_lost_and_while_starting() -> None:
    base = HealthRecord(started_at=0, eventsource_state="connected", last_poll_success_at=1000)
    status, body = verdict(replace(base, missing=("mailbox 'Feed'",)), 1001)
    assert status == "fail"
    assert "missing in the account: mailbox 'Feed'" in body["output"]
    assert "mailroom setup --apply" in body["output"]
    status, body = verdict(replace(base, starting="JMAP unreachable, retrying in 8 s"), 1001)
    assert status == "fail" and body["output"] == "starting: JMAP unreachable, retrying in 8 s"
    assert verdict(replace(base, dry_run=True), 1001)[1]["dry_run"] is True


def test_a_wall_clock_step_does_not_flip_the_verdict() -> None:
    # NTP moves the wall clock a day forward: the monotonic clock decides.
    r = HealthRecord(
        started_at=0,
        started_clock=500.0,
        eventsource_state="connected",
        last_poll_success_at=1000,
        success_clock=1000.0,
    )
    assert evaluate(r, 1030.0, 60, "1.0")[0] == "pass"
    assert evaluate(r, 1121.0, 60, "1.0")[0] == "fail"  # and still fails when it should
