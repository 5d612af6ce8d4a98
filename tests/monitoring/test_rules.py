"""The alert rules: checked by promtool, and unit-tested by it (series in, alerts out).

For every alert there are series that must fire it and series that must not.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mailroom.monitoring.rules import render_rules, rules

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not __import__("os").environ.get("CI"),
    reason="promtool not installed (Debian: apt install prometheus)",
)


def alert(name: str, **labels: str) -> dict[str, Any]:
    """An expected alert: its labels, the rule's severity, its annotations expanded."""
    rule = next(r for r in rules() if r.alert == name)

    def expand(text: str) -> str:
        for key, value in labels.items():
            text = text.replace("{{ $labels." + key + " }}", value)
        return text

    return {
        "exp_labels": {"severity": rule.severity, "job": "mailroom", **labels},
        "exp_annotations": {
            "summary": expand(rule.summary),
            "description": expand(rule.description),
        },
    }


def case(
    series: dict[str, str], name: str, quiet_at: str, fires_at: str, *expected: dict[str, Any]
) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "alert_rule_test": [
            {"eval_time": quiet_at, "alertname": name, "exp_alerts": []},
            {"eval_time": fires_at, "alertname": name, "exp_alerts": list(expected)},
        ],
    }


M = 'job="mailroom"'
CASES = [
    case(
        {
            f'up{{{M}, instance="down"}}': "1 0x10",
            f'up{{{M}, instance="fine"}}': "1x10",
            'up{job="other", instance="elsewhere"}': "0x10",  # not Mailroom's job
        },
        "MailroomDown",
        "3m",
        "8m",
        alert("MailroomDown", instance="down"),
    ),
    case(
        {
            f'mailroom_health_status{{{M}, instance="a", status="fail"}}': "0 1x10",
            f'mailroom_health_status{{{M}, instance="b", status="fail"}}': "0x10",
            f'mailroom_health_status{{{M}, instance="b", status="warn"}}': "1x10",
        },
        "MailroomHealthFailing",
        "4m",
        "8m",
        alert("MailroomHealthFailing", instance="a", status="fail"),
    ),
    case(
        {
            f'mailroom_eventsource_state{{{M}, instance="a", '
            'mailroom_eventsource_state="connected"}': "1 0x20",
            # Back within 15 minutes: never fires.
            f'mailroom_eventsource_state{{{M}, instance="b", '
            'mailroom_eventsource_state="connected"}': "1 0 0 0 0 1x15",
        },
        "MailroomPushNotConnected",
        "10m",
        "17m",
        alert("MailroomPushNotConnected", instance="a", mailroom_eventsource_state="connected"),
    ),
    case(
        {
            # Stuck: the last success stays at t=60 s.
            f'mailroom_last_successful_poll_timestamp_seconds{{{M}, instance="stuck"}}': "60x10",
            f'mailroom_poll_interval_seconds{{{M}, instance="stuck"}}': "60x10",
            # Healthy: a success every minute.
            f'mailroom_last_successful_poll_timestamp_seconds{{{M}, instance="ok"}}': "0+60x10",
            f'mailroom_poll_interval_seconds{{{M}, instance="ok"}}': "60x10",
        },
        "MailroomNoSuccessfulPass",
        "3m",
        "6m",
        alert("MailroomNoSuccessfulPass", instance="stuck"),
    ),
    case(
        {
            f'mailroom_triage_failures_total{{{M}, instance="failing"}}': "0+1x40",
            f'mailroom_triage_failures_total{{{M}, instance="once"}}': "0 1 1x40",
        },
        "MailroomTriageFailures",
        "10m",
        "30m",
        alert("MailroomTriageFailures", instance="failing"),
    ),
    case(
        {
            f'mailroom_credentials_rejected{{{M}, instance="a", service="carddav"}}': "0 0 1x5",
            f'mailroom_credentials_rejected{{{M}, instance="a", service="jmap"}}': "0x7",
        },
        "MailroomCredentialsRejected",
        "2m",
        "4m",
        alert("MailroomCredentialsRejected", instance="a", service="carddav"),
    ),
    case(
        {
            f'mailroom_eventsource_missed_pushes_total{{{M}, instance="flaky"}}': "0 1 2 3 3 3",
            f'mailroom_eventsource_missed_pushes_total{{{M}, instance="once"}}': "0 1 1 1 1 1",
        },
        "MailroomMissedPushes",
        "2m",
        "4m",
        alert("MailroomMissedPushes", instance="flaky"),
    ),
]


def test_every_rule_has_a_case_and_says_what_to_do() -> None:
    tested = {c["alert_rule_test"][0]["alertname"] for c in CASES}
    assert tested == {r.alert for r in rules()}
    for rule in rules():
        assert rule.summary and len(rule.description) > 60


@needs_promtool
def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    path = tmp_path / "mailroom.yml"
    path.write_text(render_rules())
    done = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


@needs_promtool
def test_promtool_unit_tests_every_rule_firing_and_not(tmp_path: Path) -> None:
    (tmp_path / "mailroom.yml").write_text(render_rules())
    spec = {"rule_files": ["mailroom.yml"], "evaluation_interval": "1m", "tests": CASES}
    # JSON is YAML: promtool reads it as its test file.
    (tmp_path / "rules_test.yml").write_text(json.dumps(spec, indent=1))
    done = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(tmp_path / "rules_test.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@needs_promtool
def test_the_unit_tests_can_fail(tmp_path: Path) -> None:
    # A rule made harmless no longer fires where the cases expect it to.
    broken = render_rules().replace('status=\\"fail\\"} == 1', 'status=\\"fail\\"} == 2')
    assert broken != render_rules()
    (tmp_path / "mailroom.yml").write_text(broken)
    spec = {"rule_files": ["mailroom.yml"], "evaluation_interval": "1m", "tests": CASES}
    (tmp_path / "rules_test.yml").write_text(json.dumps(spec))
    done = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(tmp_path / "rules_test.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "MailroomHealthFailing" in done.stdout + done.stderr
