"""``make bench``: Mailroom's numbers, measured on the stand-in and on Cyrus.

Every measurement runs the real ``mailroom run`` as a child process (so CPU
and memory are its own, read from /proc) against servers on loopback. Writes
``bench/results.json`` and ``bench/results.md``. ``--smoke`` uses tiny sizes
and short windows to prove the runner works (CI); the full run takes about 25
minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from mailroom import __version__
from mailroom.sandbox.mailmodel import ACCOUNT_ID
from mailroom.sandbox.server import Flavour
from tests.faultproxy import FaultProxy
from tests.faults import FaultySandbox
from tests.process import MailroomProcess, wait_until

OUT = Path(__file__).resolve().parents[2] / "bench"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]


@dataclass(frozen=True)
class Sizes:
    actions: int  # label actions for latency
    idle_seconds: float
    bulk_senders: int
    bulk_per_sender: int
    storm_events: int
    storm_seconds: float
    debounce: float
    dead_stream: bool  # the 70-90 s dead-stream runs
    ledger_decisions: int  # decisions of 10 emails written to measure the ledger


FULL = Sizes(30, 600, 100, 10, 10_000, 10, 3.0, True, 10_000)
SMOKE = Sizes(3, 5, 5, 2, 300, 1, 0.3, False, 300)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> float:
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return round(ordered[index], 3)

    return {
        "n": len(values),
        "median": round(statistics.median(ordered), 3),
        "p95": pick(0.95),
        "p99": pick(0.99),
        "max": round(ordered[-1], 3),
    }


def sched_cpu(pid: int) -> float:
    """CPU seconds as the scheduler measured them (ns precision, not ticks)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


BARE_LOOP = (
    "import asyncio\n"
    "async def main():\n"
    "    while True:\n"
    "        await asyncio.sleep(60)\n"
    "asyncio.run(main())\n"
)


def _status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def peak_rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmRSS")


# -- the stand-in -----------------------------------------------------------------


class StandIn:
    """A stand-in with a Screener and a phone that labels over JMAP."""

    def __init__(
        self,
        flavour: Flavour = "fastmail",
        public_url: str | None = None,
        *,
        sandbox: FaultySandbox | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.sb = sandbox or FaultySandbox(flavour=flavour, public_url=public_url).start()
        self.sb.mail.ensure_mailbox("Screener")
        self.http = httpx.Client(
            headers={"Authorization": f"Bearer {self.sb.token}"}, timeout=30, verify=verify
        )

    def close(self) -> None:
        self.http.close()
        self.sb.stop()

    def label(self, email_ids: list[str], label: str) -> None:
        """Add ``label`` as a phone would, within the server's maxObjectsInSet."""
        box = self.sb.mail.mailbox_id(label)
        size = self.sb.mail.max_set
        for start in range(0, len(email_ids), size):
            chunk = email_ids[start : start + size]
            update = {e: {f"mailboxIds/{box}": True} for e in chunk}
            body = {
                "using": USING,
                "methodCalls": [["Email/set", {"accountId": ACCOUNT_ID, "update": update}, "0"]],
            }
            resp = self.http.post(self.sb.url + "/jmap/api/", json=body)
            resp.raise_for_status()
            name, args, _ = resp.json()["methodResponses"][0]
            if name != "Email/set" or set(args.get("updated") or {}) != set(chunk):
                raise RuntimeError(f"labelling failed: {name} {args}")

    def wait_label_gone(self, email_id: str, label: str, timeout: float) -> float | None:
        """Seconds until ``label`` left the email, waiting on the store's changes."""
        mail = self.sb.mail
        box = mail.mailbox_id(label)
        deadline = time.monotonic() + timeout
        with mail.changed:
            while box in mail.emails[email_id].mailbox_ids:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                mail.changed.wait(left)
        return time.monotonic()


def start_service(
    env: dict[str, str], debounce: float, poll: float = 60, cwd: str | None = None
) -> MailroomProcess:
    mr = MailroomProcess(
        {
            **env,
            "MAILROOM_DEBOUNCE_SECONDS": f"{debounce:g}",
            "MAILROOM_POLL_INTERVAL": f"{poll:g}",
            "MAILROOM_LOG_LEVEL": "WARNING",
        },
        cwd=cwd,
    )
    if not wait_until(lambda: mr.push_state() in ("connected", "degraded"), 60):
        mr.stop()
        raise RuntimeError("service did not start:\n" + mr.log)
    wait_until(lambda: mr.health()[1].get("polling", {}).get("last_success_at") is not None, 30)
    return mr


def polls(mr: MailroomProcess, trigger: str) -> float:
    return mr.metric(f'mailroom_polls_total{{outcome="success",trigger="{trigger}"}}')


def bench_latency_standin(s: Sizes) -> dict[str, Any]:
    si = StandIn()
    try:
        mr = start_service(si.sb.env(), s.debounce)
        latencies: list[float] = []
        polls_per_action: list[float] = []
        requests: dict[str, list[int]] = {"api": [], "carddav": []}
        with mr:
            for n in range(s.actions):
                ids = [si.sb.mail.deliver(f"lat{n}@bench.example") for _ in range(3)]
                time.sleep(s.debounce + 0.3)  # the delivery's own push poll comes and goes
                before_polls = polls(mr, "push")
                before = dict(si.sb.requests)
                started = time.monotonic()
                si.label([ids[0]], "@ToFeed")
                done = si.wait_label_gone(ids[0], "@ToFeed", s.debounce * 4 + 10)
                if done is None:
                    continue
                latencies.append(done - started)
                # Let the poll finish and any echo settle before counting.
                floor = before_polls
                wait_until(lambda: polls(mr, "push") > floor, 10)  # noqa: B023
                time.sleep(s.debounce + 0.5)
                polls_per_action.append(polls(mr, "push") - before_polls)
                for route in requests:
                    requests[route].append(si.sb.requests.get(route, 0) - before.get(route, 0))
        return {
            "server": "stand-in (fastmail flavour)",
            "debounce_s": s.debounce,
            "latency_s": percentiles(latencies),
            "target_p99_s": s.debounce + 0.5,
            "polls_per_action": round(statistics.mean(polls_per_action), 3)
            if polls_per_action
            else None,
            # The phone's Email/set is one of the counted API requests: subtract it.
            "jmap_requests_per_sender": round(statistics.mean(requests["api"]) - 1, 2),
            "carddav_requests_per_sender": round(statistics.mean(requests["carddav"]), 2),
        }
    finally:
        si.close()


def bench_idle(s: Sizes) -> dict[str, Any]:
    si = StandIn()
    try:
        mr = start_service(si.sb.env(), s.debounce)
        # The floor: a bare asyncio loop waking as often as the safety-net poll
        # and doing nothing. What it costs is the machine's, not Mailroom's.
        floor = subprocess.Popen([sys.executable, "-c", BARE_LOOP])
        with mr:
            pid = mr.proc.pid
            time.sleep(2)  # past start-up
            req0, cpu0, t0 = si.sb.total_requests(), sched_cpu(pid), time.monotonic()
            floor0 = sched_cpu(floor.pid)
            time.sleep(s.idle_seconds)
            req1, cpu1, t1 = si.sb.total_requests(), sched_cpu(pid), time.monotonic()
            floor1 = sched_cpu(floor.pid)
            floor.kill()
            floor.wait()
            hours = (t1 - t0) / 3600
            return {
                "floor_cpu_seconds_per_hour": round((floor1 - floor0) / hours, 2),
                "floor_note": "a bare asyncio loop waking every 60 s, same window",
                "window_s": round(t1 - t0, 1),
                "poll_interval_s": 60,
                "requests_per_hour": round((req1 - req0) / hours, 1),
                "cpu_seconds_per_hour": round((cpu1 - cpu0) / hours, 2),
                "rss_mb": rss_mb(pid),
                "peak_rss_mb": peak_rss_mb(pid),
                "targets": {"requests_per_hour": 70, "cpu_seconds_per_hour": 1.0, "rss_mb": 60},
            }
    finally:
        si.close()


def bench_idle_poll_requests() -> dict[str, Any]:
    import asyncio

    from tests.conftest import Sleeps, make_clients, ready

    async def run() -> int:
        with FaultySandbox() as sb:
            sb.mail.ensure_mailbox("Screener")
            for i in range(50):
                sb.mail.deliver(f"idle{i}@bench.example")
            async with httpx.AsyncClient() as http:
                jmap, _, book, triage = make_clients(sb, http, Sleeps())
                await ready(jmap, book, triage)
                before = sb.total_requests()
                await triage.run_pass()
                return sb.total_requests() - before

    return {"requests": asyncio.run(run()), "target": 1}


def bench_bulk_standin(s: Sizes) -> dict[str, Any]:
    si = StandIn()
    try:
        mr = start_service(si.sb.env(), s.debounce)
        with mr:
            ids: list[str] = []
            for n in range(s.bulk_senders):
                for _ in range(s.bulk_per_sender):
                    ids.append(si.sb.mail.deliver(f"bulk{n}@bench.example"))
            time.sleep(s.debounce + 1)
            before = si.sb.total_requests()
            started = time.monotonic()
            si.label(ids, "@ToPaperTrail")
            label = si.sb.mail.mailbox_id("@ToPaperTrail")
            labelled_requests = -(-len(ids) // si.sb.mail.max_set)
            ok = wait_until(
                lambda: not any(label in si.sb.mail.emails[i].mailbox_ids for i in ids), 600, 0.05
            )
            took = time.monotonic() - started
            return {
                "server": "stand-in",
                "emails": len(ids),
                "senders": s.bulk_senders,
                "cleared": ok,
                "seconds": round(took, 2),
                "requests": si.sb.total_requests() - before - labelled_requests,
                "peak_rss_mb": peak_rss_mb(mr.proc.pid),
            }
    finally:
        si.close()


def bench_storm(s: Sizes) -> dict[str, Any]:
    si = StandIn()
    try:
        mr = start_service(si.sb.env(), s.debounce)
        with mr:
            time.sleep(1)
            before_polls = polls(mr, "push")
            before_events = mr.metric('mailroom_eventsource_events_total{kind="state"}')
            interval = s.storm_seconds / s.storm_events
            started = time.monotonic()
            for n in range(s.storm_events):
                si.sb.mail.deliver(f"storm{n % 50}@bench.example", mailboxes=["Inbox"])
                lag = started + (n + 1) * interval - time.monotonic()
                if lag > 0:
                    time.sleep(lag)
            took = time.monotonic() - started
            time.sleep(s.debounce + 2)
            return {
                "changes": s.storm_events,
                "seconds": round(took, 2),
                "state_events_received": mr.metric(
                    'mailroom_eventsource_events_total{kind="state"}'
                )
                - before_events,
                "polls_triggered": polls(mr, "push") - before_polls,
                "collapsed_events": mr.metric("mailroom_debounce_collapsed_events_total"),
                "peak_rss_mb": peak_rss_mb(mr.proc.pid),
            }
    finally:
        si.close()


def bench_stream_shape(s: Sizes, mode: str) -> dict[str, Any]:
    """Label latency while the stream misbehaves: ``flood`` (comments as fast as the
    socket takes them) or ``close-after-event`` (closed cleanly after each change)."""
    si = StandIn(flavour="rfc")
    try:
        mr = start_service(si.sb.env(), s.debounce)
        latencies: list[float] = []
        with mr:
            wait_until(lambda: mr.push_state() == "connected", 30)
            si.sb.faults.stream = mode  # type: ignore[assignment]
            si.sb.close_streams()
            for n in range(s.actions):
                ids = [si.sb.mail.deliver(f"{mode}{n}@bench.example") for _ in range(2)]
                time.sleep(s.debounce + 0.5)  # the delivery's own pass comes and goes
                started = time.monotonic()
                si.label([ids[0]], "@ToFeed")
                done = si.wait_label_gone(ids[0], "@ToFeed", s.debounce * 4 + 10)
                if done is not None:
                    latencies.append(done - started)
            health = mr.health()[1]
            return {
                "stream": mode,
                "debounce_s": s.debounce,
                "latency_s": percentiles(latencies),
                "target_p99_s": s.debounce + 1.0,
                "labels_missed": s.actions - len(latencies),
                "state_at_end": health.get("eventsource", {}).get("status"),
                "degraded_transitions": mr.metric(
                    'mailroom_state_transitions_total{from="backoff",to="degraded"}'
                )
                + mr.metric('mailroom_state_transitions_total{from="connecting",to="degraded"}'),
                "folded_items": mr.metric('mailroom_eventsource_events_total{kind="folded"}'),
                "peak_rss_mb": peak_rss_mb(mr.proc.pid),
            }
    finally:
        si.close()


def bench_sigterm(s: Sizes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    si = StandIn()
    try:
        mr = start_service(si.sb.env(), s.debounce)
        time.sleep(1)
        started = time.monotonic()
        mr.proc.send_signal(signal.SIGTERM)
        code = mr.proc.wait(30)
        out["idle_s"] = round(time.monotonic() - started, 3)
        out["idle_exit"] = code
        mr.stop()
        mr = start_service(si.sb.env(), 0.05)
        si.sb.faults.delay_route = "api"
        si.sb.faults.delay = 0.2
        ids = [si.sb.mail.deliver("term@bench.example") for _ in range(3)]
        before = si.sb.total_requests("api")
        si.label([ids[0]], "@ToJail")
        wait_until(lambda: si.sb.total_requests("api") > before + 1, 30, 0.01)
        started = time.monotonic()
        mr.proc.send_signal(signal.SIGTERM)
        code = mr.proc.wait(60)
        out["mid_poll_s"] = round(time.monotonic() - started, 3)
        out["mid_poll_exit"] = code
        out["mid_poll_note"] = "finishes the poll in flight (each JMAP call slowed to 0.2 s)"
        out["mid_poll_label_removed"] = all(si.sb.mail.mailbox_names(i) == {"Jail"} for i in ids)
        mr.stop()
        out["target_idle_s"] = 1.0
    finally:
        si.close()
    return out


def bench_dead_stream(with_pings: bool) -> dict[str, Any]:
    flavour: Flavour = "rfc" if with_pings else "fastmail"
    with FaultProxy("127.0.0.1", 1) as proxy:
        si = StandIn(flavour, public_url=proxy.url)
        proxy.target = ("127.0.0.1", si.sb.port)
        try:
            env = {
                **si.sb.env(),
                "MAILROOM_JMAP_SESSION_URL": proxy.url + "/jmap/session",
                "MAILROOM_CARDDAV_URL": proxy.url,
            }
            mr = start_service(env, 3.0)
            with mr:
                if with_pings:
                    wait_until(lambda: mr.metric(PINGS) > 0, 40, 0.2)
                time.sleep(1)
                reconnects = mr.health()[1]["eventsource"]["reconnect_count"]
                started = time.monotonic()
                proxy.set("blackhole", streams_only=True)
                if not with_pings:
                    ids = [si.sb.mail.deliver("dead@bench.example")]
                    si.label(ids, "@ToFeed")
                detected = wait_until(lambda: mr.push_state() != "connected", 200, 0.1)
                took = time.monotonic() - started
                proxy.set("pass")
                back = wait_until(lambda: mr.push_state() == "connected", 120, 0.1)
                return {
                    "pings": with_pings,
                    "detected": detected,
                    "seconds_to_detect": round(took, 1),
                    "reconnected": back,
                    "reconnects": mr.health()[1]["eventsource"]["reconnect_count"] - reconnects,
                    "how": HOW_PINGS if with_pings else HOW_NO_PINGS,
                    "target_s": 75 if with_pings else None,
                }
        finally:
            si.close()


PINGS = 'mailroom_eventsource_events_total{kind="ping"}'
HOW_PINGS = "no data for 2 x ping interval + 10 s"
HOW_NO_PINGS = "a safety-net poll (every 60 s) saw a change push never announced; + debounce + 5 s"


def bench_recovery(s: Sizes) -> dict[str, Any]:
    si = StandIn("rfc")
    try:
        mr = start_service(si.sb.env(), s.debounce)
        with mr:
            si.sb.set_refusing(True)  # the server goes away, connections reset
            wait_until(lambda: mr.push_state() != "connected", 30, 0.05)
            ids = [si.sb.mail.deliver(f"rec{n}@bench.example") for n in range(5)]
            si.sb.mail.set_mailboxes(ids[0], {"Screener", "@ToFeed"})  # labelled while down
            for eid in ids[1:]:
                si.sb.mail.set_mailboxes(eid, {"Screener", "@ToJail"})
            down_for = 5.0
            time.sleep(down_for)
            started = time.monotonic()
            si.sb.set_refusing(False)
            connected = wait_until(lambda: mr.push_state() == "connected", 120, 0.05)
            t_conn = time.monotonic() - started
            triaged = wait_until(
                lambda: not si.sb.mail.emails_in("@ToFeed") and not si.sb.mail.emails_in("@ToJail"),
                120,
                0.05,
            )
            return {
                "down_for_s": down_for,
                "connected_again": connected,
                "seconds_to_connected": round(t_conn, 2),
                "labels_triaged": triaged,
                "seconds_to_triaged": round(time.monotonic() - started, 2),
                "catchup_polls": polls(mr, "catchup"),
            }
    finally:
        si.close()


# -- Cyrus --------------------------------------------------------------------------


@contextlib.contextmanager
def cyrus_server(next_build: bool = False) -> Iterator[Any]:
    from tests.integration.cyrus import CYRUS_36, CYRUS_NEXT, Cyrus

    server = Cyrus.start("bench", build=CYRUS_NEXT if next_build else CYRUS_36)
    try:
        yield server
    finally:
        server.stop()


def cyrus_label_gone(cyrus: Any, email_id: str, label_id: str, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    with httpx.Client(headers={"Authorization": f"Bearer {cyrus.token}"}, timeout=30) as http:
        while time.monotonic() < deadline:
            resp = http.post(
                cyrus.base_url + "/jmap/",
                json={
                    "using": USING,
                    "methodCalls": [
                        [
                            "Email/get",
                            {
                                "accountId": cyrus.account,
                                "ids": [email_id],
                                "properties": ["mailboxIds"],
                            },
                            "g",
                        ]
                    ],
                },
            )
            boxes = resp.json()["methodResponses"][0][1]["list"][0]["mailboxIds"]
            if label_id not in boxes:
                return time.monotonic()
            time.sleep(0.02)
    return None


def bench_cyrus(s: Sizes, next_build: bool = False) -> dict[str, Any]:
    """Push-to-triage and the bulk pass on Cyrus 3.6 (CardDAV) or 3.13-dev (JMAP contacts)."""
    out: dict[str, Any] = {"cyrus_pushpoll_s": 1}
    if next_build:
        out["server"] = "Cyrus 3.13-dev, JMAP contacts (RFC 9610)"
    with cyrus_server(next_build) as cyrus:
        cyrus.ensure_mailbox("Screener")
        mr = start_service(cyrus.mailroom_env(), s.debounce)
        with mr:
            label_id = cyrus.mailboxes()["@ToFeed"]
            latencies = []
            for n in range(s.actions):
                sender = f"cl{n}-{os.getpid()}@bench.example"
                cyrus.deliver(sender, "Bench", f"latency {n}")
                mail = cyrus.wait_for_mail(sender, 1)
                time.sleep(1.5)  # Cyrus pushes the delivery within its 1 s push poll
                email_id = sorted(mail)[0]
                started = time.monotonic()
                cyrus.label(email_id, "@ToFeed")
                done = cyrus_label_gone(cyrus, email_id, label_id, s.debounce * 4 + 15)
                if done is not None:
                    latencies.append(done - started)
                time.sleep(0.5)
            out["latency_s"] = percentiles(latencies)
            out["target_p99_s"] = s.debounce + 1 + 0.5
            out["debounce_s"] = s.debounce
            out["bulk"] = bench_bulk_cyrus(cyrus, s)
            out["peak_rss_mb"] = peak_rss_mb(mr.proc.pid)
    return out


def bench_bulk_cyrus(cyrus: Any, s: Sizes) -> dict[str, Any]:
    import imaplib

    stamp = os.getpid()
    imap = imaplib.IMAP4("127.0.0.1", int(cyrus.env["CYRUS_IMAP_PORT"]))
    imap.login(cyrus.env["CYRUS_USER"], cyrus.env["CYRUS_PASS"])
    for n in range(s.bulk_senders):
        for k in range(s.bulk_per_sender):
            msg = (
                f"From: Bulk {n} <bulk{n}-{stamp}@bench.example>\r\nTo: u@localhost\r\n"
                f"Subject: bulk {n}/{k}\r\nMessage-ID: <b{n}-{k}-{stamp}@bench>\r\n"
                "Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\nbulk\r\n"
            )
            imap.append("Screener", None, imaplib.Time2Internaldate(time.time()), msg.encode())
    imap.logout()
    total = s.bulk_senders * s.bulk_per_sender
    ids: list[str] = []
    for n in range(s.bulk_senders):
        ids += list(cyrus.wait_for_mail(f"bulk{n}-{stamp}@bench.example", s.bulk_per_sender, 60))
    time.sleep(2)
    box = cyrus.mailboxes()["@ToPaperTrail"]
    started = time.monotonic()
    (resp,) = cyrus.jmap(
        [
            "Email/set",
            {"accountId": cyrus.account, "update": {i: {f"mailboxIds/{box}": True} for i in ids}},
            "s",
        ]
    )
    if resp[0] != "Email/set" or len(resp[1].get("updated") or {}) != len(ids):
        raise RuntimeError(f"labelling failed: {resp}")

    def cleared() -> bool:
        (resp,) = cyrus.jmap(
            [
                "Email/query",
                {"accountId": cyrus.account, "filter": {"inMailbox": box}, "calculateTotal": True},
                "q",
            ]
        )
        return int(resp[1]["total"]) == 0

    ok = wait_until(cleared, 600, 0.25)
    return {
        "emails": total,
        "labelled": len(ids),
        "senders": s.bulk_senders,
        "cleared": ok,
        "seconds": round(time.monotonic() - started, 2),
        "target_s": 60,
    }


# -- report -----------------------------------------------------------------------


def machine() -> dict[str, Any]:
    mem = next(
        (
            ln.split()[1]
            for ln in Path("/proc/meminfo").read_text().splitlines()
            if ln.startswith("MemTotal")
        ),
        "0",
    )
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(int(mem) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def run_all(sizes: Sizes, *, with_cyrus: bool, only: set[str] | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {
        "mailroom": __version__,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": "smoke" if sizes is SMOKE else "full",
        "machine": machine(),
    }
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("latency_standin", lambda: bench_latency_standin(sizes)),
        ("idle_poll", bench_idle_poll_requests),
        ("idle", lambda: bench_idle(sizes)),
        ("bulk_standin", lambda: bench_bulk_standin(sizes)),
        ("storm", lambda: bench_storm(sizes)),
        ("ledger", lambda: _run_ledger(sizes)),
        ("takeback", lambda: _run_takeback(sizes)),
        ("domain_rules", _run_domain_rules),
        ("flood", lambda: bench_stream_shape(sizes, "flood")),
        ("close_after_event", lambda: bench_stream_shape(sizes, "close-after-event")),
        ("sigterm", lambda: bench_sigterm(sizes)),
        ("recovery", lambda: bench_recovery(sizes)),
    ]
    if sizes.dead_stream:
        steps += [
            ("dead_stream_pings", lambda: bench_dead_stream(True)),
            ("dead_stream_no_pings", lambda: bench_dead_stream(False)),
        ]
    steps.append(("link", lambda: _run_link(sizes)))
    steps += _web_steps(sizes)
    steps.append(("trust_sent", _run_trust))
    steps.append(("list_rules", _run_lists))
    from tests.bench import container

    if container.available():
        steps.append(("container", lambda: container.bench_container(sizes.idle_seconds / 10)))
    if with_cyrus:
        steps.append(("cyrus", lambda: bench_cyrus(sizes)))
        steps.append(("cyrus_next", lambda: bench_cyrus(sizes, next_build=True)))
    for name, step in steps:
        if only is not None and name not in only:
            continue
        started = time.monotonic()
        print(f"bench: {name} ...", flush=True)
        try:
            results[name] = step()
        except Exception as exc:  # a failed step is reported, the rest still run
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(
            f"bench: {name} done in {time.monotonic() - started:.0f} s: {results[name]}", flush=True
        )
    return results


def _web_steps(sizes: Sizes) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
    from tests.bench import web  # it builds on this module

    return [
        ("web_screener", lambda: web.bench_screener_page(sizes)),
        ("web_memory", lambda: web.bench_idle_memory(sizes)),
        ("web_decision", lambda: web.bench_decision_over_link(sizes)),
        ("web_flood", lambda: web.bench_flood(sizes)),
    ]


def _run_lists() -> dict[str, Any]:
    from tests.bench.lists import bench_list_rules

    return bench_list_rules()


def _run_trust() -> dict[str, Any]:
    from tests.bench.trust import bench_trust

    return bench_trust()


def _run_ledger(sizes: Sizes) -> dict[str, Any]:
    from tests.bench.ledger import bench_ledger

    return bench_ledger(sizes.ledger_decisions)


def _run_takeback(sizes: Sizes) -> dict[str, Any]:
    from tests.bench.link import link_takeback  # over the realistic link

    senders = 100 if sizes.bulk_senders >= 100 else 10
    return link_takeback(senders, 10)


def _run_domain_rules() -> dict[str, Any]:
    from tests.bench.link import link_domain_rules  # over the realistic link

    return link_domain_rules()


def _run_link(sizes: Sizes) -> dict[str, Any]:
    from tests.bench.link import run_link  # it builds on this module

    return run_link(sizes)


def _link_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The realistic-link rows: TLS, 100 ms round trips, both contacts backends."""
    link = r.get("link")
    if not isinstance(link, dict) or "error" in link:
        return [("Realistic link (TLS, 100 ms RTT)", str(link), "")]
    rows = []
    for backend, name in (("jmap", "JMAP contacts"), ("carddav", "CardDAV")):
        b = link.get(backend, {})
        lat = b.get("latency", {})
        pct = lat.get("latency_s", {})
        rows.append(
            (
                f"Link, {name}: label → triage, one sender (s)",
                f"median {pct.get('median')} / p99 {pct.get('p99')} (n={pct.get('n')})",
                f"p99 ≤ {lat.get('target_p99_s')}",
            )
        )
        bulk = b.get("bulk", {})
        rows.append(
            (
                f"Link, {name}: {bulk.get('senders')} senders x "
                f"{(bulk.get('emails') or 0) // max(1, bulk.get('senders') or 1)} emails "
                "labelled at once: seconds (debounce included) / requests",
                f"{bulk.get('seconds')} / {bulk.get('requests')}",
                "≤ 5 s" if backend == "jmap" else "",
            )
        )
        passes = b.get("per_pass", {}).get("passes", [])
        rows.append(
            (
                f"Link, {name}: requests (seconds) per pass, "
                + " → ".join(f"{p['senders']}" for p in passes)
                + " senders",
                " → ".join(f"{p['requests']} ({p['seconds']})" for p in passes),
                "constant" if backend == "jmap" else "new contacts + changed groups + 6",
            )
        )
        idle = b.get("idle", {})
        rows.append(
            (
                f"Link, {name}, idle: requests / TLS handshakes / CPU s per hour",
                f"{idle.get('requests_per_hour')} / {idle.get('tls_handshakes_per_hour')} / "
                f"{idle.get('cpu_seconds_per_hour')}",
                "",
            )
        )
    return rows


def pick(r: dict[str, Any], *path: str) -> Any:
    """The value at ``path`` in the results, or "n/a"."""
    node: Any = r
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return "n/a"
        node = node[key]
    return node


def markdown(r: dict[str, Any]) -> str:
    def get(*path: str) -> Any:
        return pick(r, *path)

    def lat(*path: str) -> str:
        d = get(*path)
        if not isinstance(d, dict) or "median" not in d:
            return "n/a"
        return f"median {d['median']} / p95 {d['p95']} / p99 {d['p99']} (n={d['n']})"

    m = r["machine"]

    def cells(*values: object) -> str:
        return " / ".join(str(v) for v in values)

    lat_target = f"p99 ≤ {get('latency_standin', 'target_p99_s')}"
    cyrus_target = f"p99 ≤ {get('cyrus', 'target_p99_s')}"
    rows = [
        ("Push-to-triage, stand-in (s)", lat("latency_standin", "latency_s"), lat_target),
        ("Push-to-triage, Cyrus, push poll 1 s (s)", lat("cyrus", "latency_s"), cyrus_target),
        (
            "Push-to-triage, Cyrus 3.13-dev over JMAP contacts (s)",
            lat("cyrus_next", "latency_s"),
            cyrus_target,
        ),
        ("Polls per user action", get("latency_standin", "polls_per_action"), "1.0"),
        (
            "JMAP / CardDAV requests per triaged sender",
            cells(
                get("latency_standin", "jmap_requests_per_sender"),
                get("latency_standin", "carddav_requests_per_sender"),
            ),
            "constant",
        ),
        ("Idle poll: HTTP requests", get("idle_poll", "requests"), "1"),
        ("Idle, connected: requests per hour", get("idle", "requests_per_hour"), "≤ 70"),
        (
            "Idle, connected: CPU seconds per hour (machine floor)",
            f"{get('idle', 'cpu_seconds_per_hour')} ({get('idle', 'floor_cpu_seconds_per_hour')})",
            "≤ 1",
        ),
        (
            "Idle: RSS / peak RSS (MB)",
            cells(get("idle", "rss_mb"), get("idle", "peak_rss_mb")),
            "≤ 60",
        ),
        (
            "Bulk, stand-in: emails / senders / seconds / requests",
            cells(*(get("bulk_standin", k) for k in ("emails", "senders", "seconds", "requests"))),
            "",
        ),
        (
            "Bulk, Cyrus: emails / senders / seconds",
            cells(*(get("cyrus", "bulk", k) for k in ("emails", "senders", "seconds"))),
            "≤ 60 s",
        ),
        (
            "Bulk, Cyrus 3.13-dev (JMAP contacts): emails / senders / seconds",
            cells(*(get("cyrus_next", "bulk", k) for k in ("emails", "senders", "seconds"))),
            "≤ 60 s",
        ),
        ("Dead stream detected, pings (s)", get("dead_stream_pings", "seconds_to_detect"), "≤ 75"),
        (
            "Dead stream detected, no pings (s)",
            get("dead_stream_no_pings", "seconds_to_detect"),
            "",
        ),
        (
            "Recovery: server back → CONNECTED / labels triaged (s)",
            cells(get("recovery", "seconds_to_connected"), get("recovery", "seconds_to_triaged")),
            "",
        ),
        ("SIGTERM → exit, idle (s)", get("sigterm", "idle_s"), "≤ 1"),
        ("SIGTERM → exit, mid-poll (s)", get("sigterm", "mid_poll_s"), "finishes the poll"),
        (
            "Event storm: changes in s / events / polls / peak RSS MB",
            cells(
                f"{get('storm', 'changes')} in {get('storm', 'seconds')}",
                get("storm", "state_events_received"),
                get("storm", "polls_triggered"),
                get("storm", "peak_rss_mb"),
            ),
            "",
        ),
        (
            "Ledger: a pass of 100 senders x 10 emails adds (ms, median / p95)",
            cells(get("ledger", "pass_ms", "median"), get("ledger", "pass_ms", "p95")),
            "≤ 5",
        ),
        (
            "Ledger: file size after decisions of 10 emails (MB)",
            f"{get('ledger', 'file_mb')} after {get('ledger', 'decisions')}",
            "≤ 20 per 10,000",
        ),
        (
            "Link, JMAP contacts: reset of "
            f"{get('takeback', 'senders')} senders x 10 emails (requests / s)",
            cells(get("takeback", "reset", "requests"), get("takeback", "reset", "seconds")),
            "≤ 8; ≤ 5",
        ),
        (
            "Link, JMAP contacts: undo @domain of "
            f"{get('takeback', 'senders')} senders x 10 emails (requests / s)",
            cells(
                get("takeback", "undo_domain", "requests"),
                get("takeback", "undo_domain", "seconds"),
            ),
            "≤ 8; ≤ 5",
        ),
        (
            "Link, JMAP contacts: an idle pass with 0 / 1 / 100 domain rules (requests)",
            cells(*(p.get("requests") for p in _rule_passes(r))),
            "one query whatever the rules; none without",
        ),
        (
            "Link, JMAP contacts: an idle pass with 0 / 1 / 100 domain rules (s, median)",
            cells(*(p.get("seconds_median") for p in _rule_passes(r))),
            "",
        ),
        (
            "Flood of comments: label latency p99 (s) / peak RSS MB",
            cells(
                get("flood", "latency_s", "p99"),
                get("flood", "peak_rss_mb"),
            ),
            "≤ debounce + 1 s; ≤ 60 MB",
        ),
        (
            "Stream closed after each change: label latency p99 (s) / degraded",
            cells(
                get("close_after_event", "latency_s", "p99"),
                get("close_after_event", "degraded_transitions"),
            ),
            "≤ debounce + 1 s; 0",
        ),
    ]
    rows += _link_rows(r)
    from tests.bench.web import web_rows

    rows += web_rows(r)
    from tests.bench.container import container_rows

    rows += container_rows(r)
    trust = r.get("trust_sent", {}).get("passes") if isinstance(r.get("trust_sent"), dict) else None
    lists = pick(r, "list_rules", "idle_passes")
    if isinstance(lists, list):
        rows.append(
            (
                "List rules: requests of an idle pass with 0 / 1 / 100 rules",
                " / ".join(str(p["requests"]) for p in lists),
                "1 / 2 / 2",
            )
        )
    if isinstance(trust, list):
        rows.append(
            (
                "Trusting people you wrote to: extra requests, idle pass / with 1, 10, 100 new "
                "senders",
                f"{trust[0]['extra_requests_idle']} / "
                + " / ".join(str(p["extra_requests_with_new_senders"]) for p in trust),
                "0 / 1",
            )
        )
    lines = [
        f"# Mailroom benchmark ({r['mode']} run)",
        "",
        f"Mailroom {r['mailroom']}, {r['date']}, {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_gb']} GB, Python {m['python']}.",
        "Command: `make bench` (full) or `make bench-smoke`. Raw numbers: `results.json`.",
        *_older_sections(r),
        "",
        "| Measure | Result | Target |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
    ]
    return "\n".join(lines)


def _rule_passes(r: dict[str, Any]) -> list[dict[str, Any]]:
    section = r.get("domain_rules")
    passes = section.get("passes") if isinstance(section, dict) else None
    return passes if isinstance(passes, list) else []


def _older_sections(r: dict[str, Any]) -> list[str]:
    """Sections kept from an earlier run (``--only`` re-measures the others)."""
    dates = r.get("section_dates") or {}
    older: dict[str, list[str]] = {}
    for name, date in sorted(dates.items()):
        if date[:10] != r["date"][:10] and name in r:
            older.setdefault(date[:10], []).append(name)
    return [
        f"Kept from the run of {day}: {', '.join(names)}." for day, names in sorted(older.items())
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--no-cyrus", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--only",
        help="comma-separated sections to run again, merged into the existing results "
        "(each keeps the date it was measured on)",
    )
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    with_cyrus = not args.no_cyrus and os.geteuid() == 0
    only = set(args.only.split(",")) if args.only else None
    results = run_all(sizes, with_cyrus=with_cyrus, only=only)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "smoke" if args.smoke else "results"
    if only is not None and (args.out / f"{stem}.json").exists():
        earlier = json.loads((args.out / f"{stem}.json").read_text())
        dates = earlier.setdefault("section_dates", {})
        for name in only & results.keys():
            earlier[name] = results[name]
            dates[name] = results["date"]
        results = earlier
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(results))
    print(markdown(results))
    errors = [k for k, v in results.items() if isinstance(v, dict) and "error" in v]
    if errors:
        print(f"bench: steps failed: {', '.join(errors)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
