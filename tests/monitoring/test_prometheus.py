"""A real Prometheus scraping a running Mailroom: series, alerts, dashboard queries.

Prometheus (Debian's package) runs on loopback with a 1 s scrape and rule
evaluation and the shipped rules with their waits cut to 5 s. Mailroom runs
against the stand-in; push is then refused so it goes DEGRADED, and the
alert is followed through Prometheus's HTTP API from pending to firing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailroom.monitoring.dashboard import dashboard, expressions
from mailroom.monitoring.rules import render_rules
from mailroom.sandbox.server import free_port
from tests.faults import FaultySandbox
from tests.process import MailroomProcess, wait_until

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        PROMETHEUS is None and not __import__("os").environ.get("CI"),
        reason="prometheus not installed (Debian: apt install prometheus)",
    ),
]
FAST_FOR = 5  # seconds: the test copy's `for:`


class Prometheus:
    def __init__(self, workdir: Path, target: str) -> None:
        self.port = free_port()
        (workdir / "rules.yml").write_text(render_rules(for_seconds=FAST_FOR))
        (workdir / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "rule_files: [rules.yml]\n"
            "scrape_configs:\n"
            "  - job_name: mailroom\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n"
        )
        self.proc = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "prometheus.log").open("w"),
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            return httpx.get(self.base + "/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str) -> dict[str, Any]:
        resp = httpx.get(self.base + "/api/v1/query", params={"query": expr}, timeout=5)
        data: dict[str, Any] = resp.json()
        return data

    def series(self, expr: str) -> list[dict[str, Any]]:
        data = self.query(expr)
        assert data["status"] == "success", data
        result: list[dict[str, Any]] = data["data"]["result"]
        return result

    def alert_state(self, name: str) -> str | None:
        alerts = httpx.get(self.base + "/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        states = [a["state"] for a in alerts if a["labels"].get("alertname") == name]
        return states[0] if states else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[FaultySandbox, MailroomProcess, Prometheus]]:
    with FaultySandbox() as sb:
        sb.prepare()
        env = {**sb.env("jmap"), "MAILROOM_DEBOUNCE_SECONDS": "0.2"}
        with MailroomProcess(env) as mr:
            prom = Prometheus(tmp_path, f"127.0.0.1:{mr.port}")
            try:
                assert wait_until(prom.ready, 60), (tmp_path / "prometheus.log").read_text()
                yield sb, mr, prom
            finally:
                prom.stop()


def test_prometheus_scrapes_the_documented_series_and_fires_the_degraded_alert(
    world: tuple[FaultySandbox, MailroomProcess, Prometheus],
) -> None:
    sb, mr, prom = world
    began = time.monotonic()
    assert wait_until(lambda: mr.push_state() == "connected", 30), mr.log
    eid = sb.mail.deliver("prom@x.example", name="Prom Co")
    sb.mail.set_mailboxes(eid, {"Screener", "@ToFeed"})
    assert wait_until(lambda: sb.mail.mailbox_names(eid) == {"Feed"}, 30), mr.log

    def scraped(expr: str) -> bool:
        return bool(prom.series(expr))

    # The series arrive with the documented names and labels.
    assert wait_until(lambda: scraped('mailroom_triaged_senders_total{category="Feed"} > 0'), 30)
    assert prom.series('up{job="mailroom"}')[0]["value"][1] == "1"
    connected = prom.series(
        'mailroom_eventsource_state{job="mailroom", mailroom_eventsource_state="connected"}'
    )
    assert connected[0]["value"][1] == "1"
    assert prom.series('mailroom_health_status{status="pass"}')[0]["value"][1] == "1"
    triggers = {s["metric"]["trigger"] for s in prom.series("mailroom_polls_total")}
    assert {"push", "fallback", "catchup"} <= triggers
    services = {s["metric"]["service"] for s in prom.series("mailroom_credentials_rejected")}
    assert services == {"jmap", "carddav", "stream"}
    assert prom.series("mailroom_poll_interval_seconds")[0]["value"][1] == "60"
    assert prom.alert_state("MailroomPushNotConnected") is None

    # Push refused: DEGRADED, and the alert goes pending, then firing.
    sb.faults.force("eventsource", 404)
    sb.close_streams()
    assert wait_until(lambda: mr.push_state() == "degraded", 30), mr.log
    seen: list[str] = []

    def alert_reaches(state: str) -> bool:
        now = prom.alert_state("MailroomPushNotConnected")
        if now and (not seen or seen[-1] != now):
            seen.append(now)
        return now == state

    assert wait_until(lambda: alert_reaches("firing"), 60)
    assert seen[:2] == ["pending", "firing"], seen
    degraded = prom.series('mailroom_eventsource_state{mailroom_eventsource_state="degraded"}')
    assert degraded[0]["value"][1] == "1"
    assert prom.series('mailroom_health_status{status="warn"}')[0]["value"][1] == "1"
    print(f"prometheus test: {time.monotonic() - began:.1f} s from service up to alert firing")


def test_every_dashboard_expression_is_valid_promql_over_real_series(
    world: tuple[FaultySandbox, MailroomProcess, Prometheus],
) -> None:
    _, mr, prom = world
    assert wait_until(lambda: bool(prom.series("mailroom_polls_total")), 30)
    exposed = set(re.findall(r"^(mailroom_\w+)", mr.metrics(), re.MULTILINE))
    for expr in expressions(dashboard()):
        # Only metric names /metrics exposes …
        names = set(re.findall(r"\b(mailroom_\w+)\b(?!\s*=)", expr))
        assert names and names <= exposed, (expr, names - exposed)
        # … and Prometheus accepts the query, Grafana's variables filled in.
        concrete = expr.replace("$job", "mailroom").replace("$__rate_interval", "1m")
        answer = prom.query(concrete)
        assert answer["status"] == "success", (concrete, answer)
