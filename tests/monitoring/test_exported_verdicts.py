"""/health's verdict and credential rejections, exported as metrics for alert rules."""

from __future__ import annotations

from mailroom.observe.metrics import Metrics
from mailroom.observe.telemetry import Telemetry
from mailroom.push.connection import STATES, transitions


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def telemetry(clock: Clock) -> Telemetry:
    metrics = Metrics(STATES, transitions(), ["Feed"], "test")
    return Telemetry(metrics, 60.0, wall=clock, monotonic=clock)


def value(t: Telemetry, series: str) -> float:
    for line in t.metrics_text().decode().splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not exposed")


def test_the_health_verdict_follows_the_clock_at_each_scrape() -> None:
    clock = Clock()
    t = telemetry(clock)
    t.pass_finished("startup", 0.1)
    assert value(t, 'mailroom_health_status{status="warn"}') == 1  # push not connected yet
    assert value(t, 'mailroom_health_status{status="pass"}') == 0
    clock.now += 121  # two intervals without a successful pass
    assert value(t, 'mailroom_health_status{status="fail"}') == 1
    assert value(t, 'mailroom_health_status{status="warn"}') == 0
    assert value(t, "mailroom_poll_interval_seconds") == 60


def test_credentials_rejected_by_service() -> None:
    clock = Clock()
    t = telemetry(clock)
    for service in ("jmap", "carddav", "stream"):
        assert value(t, f'mailroom_credentials_rejected{{service="{service}"}}') == 0
    t.pass_finished("push", 0.1, error="rejected", auth_rejected="CardDAV (HTTP 401)")
    assert value(t, 'mailroom_credentials_rejected{service="carddav"}') == 1
    assert value(t, 'mailroom_credentials_rejected{service="jmap"}') == 0
    t.push_auth_rejected("EventSource (HTTP 403)")
    assert value(t, 'mailroom_credentials_rejected{service="stream"}') == 1
    assert value(t, 'mailroom_health_status{status="fail"}') == 1
    t.pass_finished("push", 0.1)  # the password was fixed: the next pass succeeds
    t.push_auth_rejected(None)
    assert value(t, 'mailroom_credentials_rejected{service="carddav"}') == 0
    assert value(t, 'mailroom_credentials_rejected{service="stream"}') == 0
    t.pass_finished("push", 0.1, error="rejected", auth_rejected="JMAP (HTTP 401)")
    assert value(t, 'mailroom_credentials_rejected{service="jmap"}') == 1


def test_the_history_is_bounded_and_newest_first() -> None:
    clock = Clock()
    t = telemetry(clock)
    for n in range(80):
        clock.now += 1
        t.pass_finished("push", 0.1, triaged={"Feed": 1}, senders=((f"s{n}@x", "Feed"),))
    page = t.page()
    assert len(page.passes) == 20 and len(page.senders) == 50
    assert page.senders[0].sender == "s79@x" and page.passes[0].senders == 1
