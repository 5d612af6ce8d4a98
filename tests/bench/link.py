"""The benchmark on a link like a home server's to Fastmail: TLS and 100 ms round trips.

The stand-in serves HTTPS with a certificate made at run time (``trustme``);
Mailroom trusts it through ``SSL_CERT_FILE``, as a user with a private CA
would. The fault proxy holds every chunk 50 ms each way. The phone labels
directly (its own link is not what is measured).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import ssl
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trustme

from mailroom.contacts.book import ContactsBackend
from tests.bench.runner import (
    Sizes,
    StandIn,
    percentiles,
    polls,
    rss_mb,
    sched_cpu,
    start_service,
)
from tests.faultproxy import FaultProxy
from tests.faults import FaultySandbox
from tests.process import wait_until

ONE_WAY = 0.05  # seconds: a 100 ms round trip


@dataclass
class Link:
    sb: FaultySandbox
    proxy: FaultProxy
    phone: StandIn
    env: dict[str, str]
    client_tls: ssl.SSLContext

    @property
    def public(self) -> str:
        return f"https://127.0.0.1:{self.proxy.port}"


@contextlib.contextmanager
def tls_link(contacts: ContactsBackend) -> Iterator[Link]:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    with tempfile.TemporaryDirectory() as tmp, FaultProxy("127.0.0.1", 1) as proxy:
        ca_file = Path(tmp) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        public = f"https://127.0.0.1:{proxy.port}"
        sb = FaultySandbox(tls=server_tls, public_url=public).start()
        proxy.target = ("127.0.0.1", sb.port)
        proxy.latency = ONE_WAY
        env = sb.env(contacts.value)
        env["MAILROOM_JMAP_SESSION_URL"] = public + "/jmap/session"
        if contacts is ContactsBackend.CARDDAV:
            env["MAILROOM_CARDDAV_URL"] = public
        env["SSL_CERT_FILE"] = str(ca_file)
        phone = StandIn(sandbox=sb, verify=client_tls)
        try:
            yield Link(sb, proxy, phone, env, client_tls)
        finally:
            phone.close()


def link_latency(s: Sizes, contacts: ContactsBackend) -> dict[str, Any]:
    with tls_link(contacts) as link:
        mr = start_service(link.env, s.debounce)
        latencies: list[float] = []
        with mr:
            for n in range(s.actions):
                ids = [link.sb.mail.deliver(f"lat{n}@link.example") for _ in range(3)]
                time.sleep(s.debounce + 0.5)  # the delivery's own push pass comes and goes
                before = polls(mr, "push")
                started = time.monotonic()
                link.phone.label([ids[0]], "@ToFeed")
                done = link.phone.wait_label_gone(ids[0], "@ToFeed", s.debounce * 4 + 15)
                if done is not None:
                    latencies.append(done - started)
                wait_until(lambda: polls(mr, "push") > before, 10)  # noqa: B023
        return {
            "contacts": contacts.value,
            "latency_s": percentiles(latencies),
            "target_p99_s": s.debounce + 1.0,
        }


def link_bulk(s: Sizes, contacts: ContactsBackend) -> dict[str, Any]:
    with tls_link(contacts) as link:
        mr = start_service(link.env, s.debounce)
        with mr:
            ids = [
                link.sb.mail.deliver(f"bulk{n}@link.example", name=f"Bulk {n}")
                for n in range(s.bulk_senders)
                for _ in range(s.bulk_per_sender)
            ]
            time.sleep(s.debounce + 2)
            before = link.sb.total_requests()
            started = time.monotonic()
            link.phone.label(ids, "@ToPaperTrail")
            phone_requests = link.sb.total_requests() - before
            box = link.sb.mail.mailbox_id("@ToPaperTrail")
            ok = wait_until(
                lambda: not any(box in link.sb.mail.emails[i].mailbox_ids for i in ids), 600, 0.05
            )
            took = time.monotonic() - started
            time.sleep(1)
            return {
                "contacts": contacts.value,
                "emails": len(ids),
                "senders": s.bulk_senders,
                "cleared": ok,
                "seconds": round(took, 2),
                "debounce_s": s.debounce,
                "requests": link.sb.total_requests() - before - phone_requests,
                "target_s": 5.0,
            }


def link_requests_per_pass(contacts: ContactsBackend, counts: tuple[int, ...]) -> dict[str, Any]:
    """One pass in-process over the link, for a growing number of new senders."""
    from tests.conftest import Sleeps, make_clients, ready

    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {"contacts": contacts.value, "passes": []}
        with tls_link(contacts) as link:
            async with httpx.AsyncClient(verify=link.client_tls, timeout=60) as http:
                sb = link.sb
                jmap, _, book, triage = make_clients(sb, http, Sleeps(), contacts, base=link.public)
                await ready(jmap, book, triage)
                for round_, n in enumerate(counts):
                    for i in range(n):
                        for k in range(10):
                            eid = sb.mail.deliver(f"p{round_}s{i}@link.example", name=f"S {i}")
                            if k == 0:
                                sb.mail.set_mailboxes(eid, {"Screener", "@ToFeed"})
                    before = sb.total_requests()
                    started = time.monotonic()
                    result = await triage.run_pass()
                    out["passes"].append(
                        {
                            "senders": n,
                            "triaged": result.senders_triaged,
                            "requests": sb.total_requests() - before,
                            "seconds": round(time.monotonic() - started, 3),
                        }
                    )
        return out

    return asyncio.run(run())


def link_idle(s: Sizes, contacts: ContactsBackend) -> dict[str, Any]:
    with tls_link(contacts) as link:
        mr = start_service(link.env, s.debounce)
        with mr:
            pid = mr.proc.pid
            # A server that never pings (Fastmail's flavour) costs one stream
            # replacement, once, before Mailroom learns it: not idle cost. (The
            # smoke run's window is too short to matter.)
            if s.idle_seconds >= 60:
                wait_until(lambda: mr.metric("mailroom_eventsource_reconnects_total") >= 1, 150, 1)
            time.sleep(3)
            window = max(s.idle_seconds / 2, 5)
            req0, hs0, cpu0, t0 = (
                link.sb.total_requests(),
                link.proxy.connections_accepted,
                sched_cpu(pid),
                time.monotonic(),
            )
            time.sleep(window)
            req1, hs1, cpu1, t1 = (
                link.sb.total_requests(),
                link.proxy.connections_accepted,
                sched_cpu(pid),
                time.monotonic(),
            )
            hours = (t1 - t0) / 3600
            return {
                "contacts": contacts.value,
                "window_s": round(t1 - t0, 1),
                "requests_per_hour": round((req1 - req0) / hours, 1),
                "tls_handshakes_per_hour": round((hs1 - hs0) / hours, 1),
                "cpu_seconds_per_hour": round((cpu1 - cpu0) / hours, 2),
                "rss_mb": rss_mb(pid),
            }


def run_link(s: Sizes) -> dict[str, Any]:
    counts = (1, 10, 100) if s.bulk_senders >= 100 else (1, 3, 5)
    out: dict[str, Any] = {"one_way_latency_s": ONE_WAY}
    for contacts in (ContactsBackend.JMAP, ContactsBackend.CARDDAV):
        key = contacts.value
        out[key] = {
            "latency": link_latency(s, contacts),
            "bulk": link_bulk(s, contacts),
            "per_pass": link_requests_per_pass(contacts, counts),
            "idle": link_idle(s, contacts),
        }
    return out


def main() -> None:
    """``python -m tests.bench.link --idle``: measure the idle link again, into results."""
    import json
    import sys

    from tests.bench.runner import FULL, OUT, markdown

    if sys.argv[1:] != ["--idle"]:
        raise SystemExit("usage: python -m tests.bench.link --idle")
    path = OUT / "results.json"
    results = json.loads(path.read_text())
    for contacts in (ContactsBackend.JMAP, ContactsBackend.CARDDAV):
        results["link"][contacts.value]["idle"] = link_idle(FULL, contacts)
        print(results["link"][contacts.value]["idle"], flush=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    (OUT / "results.md").write_text(markdown(results))


if __name__ == "__main__":
    main()


def link_takeback(senders: int = 100, emails: int = 10) -> dict[str, Any]:
    """``mailroom reset`` and ``mailroom undo @domain`` of ``senders`` x ``emails``
    over the link with JMAP contacts: requests and seconds, in-process."""
    with tls_link(ContactsBackend.JMAP) as link, tempfile.TemporaryDirectory() as state:
        # The commands make their own client: it trusts the link's CA through
        # SSL_CERT_FILE, set for this section only (the file goes with the link).
        was = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = link.env["SSL_CERT_FILE"]
        try:
            return asyncio.run(_takeback(link, Path(state), senders, emails))
        finally:
            if was is None:
                os.environ.pop("SSL_CERT_FILE", None)
            else:
                os.environ["SSL_CERT_FILE"] = was


async def _takeback(link: Link, state: Path, senders: int, emails: int) -> dict[str, Any]:
    from mailroom.commands.triage import run_triage
    from mailroom.commands.undo import run_reset, run_undo
    from mailroom.ledger.store import Ledger
    from mailroom.settings import load_settings
    from mailroom.triage.workflow import Triage
    from tests.conftest import Sleeps, make_clients, ready

    out: dict[str, Any] = {"senders": senders, "emails_per_sender": emails}
    sb = link.sb
    env = {**link.env, "MAILROOM_CONTACTS": "jmap", "MAILROOM_STATE_DIR": str(state)}
    settings = load_settings(env)
    for i in range(senders):
        for k in range(emails):
            eid = sb.mail.deliver(f"s{i}@news.takeback.example", name=f"S {i}")
            if k == 0:
                sb.mail.set_mailboxes(eid, {"Screener", "@ToFeed"})
    async with httpx.AsyncClient(verify=link.client_tls, timeout=60) as http:
        jmap, _, book, plain = make_clients(
            sb, http, Sleeps(), ContactsBackend.JMAP, base=link.public
        )
        ledger, _ = Ledger.open(state / "mailroom.db")
        triage = Triage(jmap, book, plain.config, ledger=ledger)
        await ready(jmap, book, triage)
        result = await triage.run_pass()
        ledger.close()
    out["triaged"] = result.senders_triaged

    def all_back() -> bool:
        screener = sb.mail.mailbox_id("Screener")
        return all(e.mailbox_ids == {screener} for e in sb.mail.emails.values())

    async def measure(name: str, command: Any) -> None:
        before, started = sb.total_requests(), time.monotonic()
        err = io.StringIO()
        code = await command(err)
        out[name] = {
            "exit": code,
            "requests": sb.total_requests() - before,
            "seconds": round(time.monotonic() - started, 2),
            "error": err.getvalue()[:300] or None,
            "all_back": all_back(),
        }

    await measure("reset", lambda err: run_reset(settings, apply=True, out=io.StringIO(), err=err))
    out["domain_triage_exit"] = await run_triage(
        settings, "@takeback.example", "Feed", apply=True, out=io.StringIO(), err=io.StringIO()
    )
    await measure(
        "undo_domain",
        lambda err: run_undo(settings, "@takeback.example", apply=True, out=io.StringIO(), err=err),
    )
    out["target_requests"], out["target_s"] = 8, 5.0
    return out


def link_domain_rules(rule_counts: tuple[int, ...] = (0, 1, 100)) -> dict[str, Any]:
    """What whole-domain rules add to a pass over the link: an idle pass (nothing
    labelled) with 0, 1 and 100 rules in force; requests and seconds."""
    from mailroom.ledger.model import DecisionKind, Intent
    from mailroom.ledger.store import Ledger
    from mailroom.triage.workflow import Triage
    from tests.conftest import Sleeps, make_clients, ready

    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {"passes": []}
        with tls_link(ContactsBackend.JMAP) as link, tempfile.TemporaryDirectory() as state:
            sb = link.sb
            for n in range(20):
                sb.mail.deliver(f"waiting{n}@elsewhere.example")  # a Screener to search
            async with httpx.AsyncClient(verify=link.client_tls, timeout=60) as http:
                jmap, _, book, plain = make_clients(
                    sb, http, Sleeps(), ContactsBackend.JMAP, base=link.public
                )
                ledger, _ = Ledger.open(Path(state) / "mailroom.db")
                triage = Triage(jmap, book, plain.config, ledger=ledger)
                await ready(jmap, book, triage)
                made = 0
                for count in rule_counts:
                    while made < count:
                        (rule,) = ledger.begin(
                            [Intent(f"@r{made}.example", DecisionKind.TRIAGE, "Feed", "cli")]
                        )
                        ledger.finish([rule])
                        made += 1
                    await triage.run_pass()  # warm
                    times, requests = [], []
                    for _ in range(5):
                        before, started = sb.total_requests(), time.monotonic()
                        await triage.run_pass()
                        times.append(time.monotonic() - started)
                        requests.append(sb.total_requests() - before)
                    out["passes"].append(
                        {
                            "rules": count,
                            "requests": max(requests),
                            "seconds_median": round(sorted(times)[len(times) // 2], 3),
                        }
                    )
                ledger.close()
        return out

    return asyncio.run(run())
