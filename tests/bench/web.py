"""The web pages' numbers: the Screener page with many senders waiting
(server time, JMAP requests per view, none while nothing changed), a decision
from the click to the account changed over the realistic link (TLS, 100 ms
round trips, no debounce), and the service's idle memory with the pages on.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from mailroom.contacts.book import ContactsBackend
from mailroom.web.auth import hash_password
from tests.bench.runner import Sizes, StandIn, percentiles, pick, rss_mb, start_service
from tests.process import MailroomProcess, wait_until

PASSWORD = "a bench password"
BEFORE_PAGES = "382336c"  # the last commit before the web pages: today's memory
HASH = hash_password(PASSWORD)


def _logged_in(mr: MailroomProcess) -> tuple[httpx.Client, str]:
    http = httpx.Client(base_url=mr.base, timeout=60)
    headers = {"Origin": mr.base, "Sec-Fetch-Site": "same-origin"}
    resp = http.post("/login", data={"password": PASSWORD}, headers=headers)
    if resp.status_code != 303:
        raise RuntimeError(f"login: {resp.status_code}")
    found = re.search(r'name="csrf" value="([^"]+)"', http.get("/history").text)
    assert found is not None
    return http, found.group(1)


def _timed_view(http: httpx.Client, path: str = "/screener") -> tuple[float, str]:
    started = time.perf_counter()
    resp = http.get(path)
    took = time.perf_counter() - started
    if resp.status_code != 200:
        raise RuntimeError(f"GET {path}: {resp.status_code}")
    return took, resp.text


def bench_screener_page(s: Sizes) -> dict[str, Any]:
    senders = 1000 if s.bulk_senders >= 100 else 50
    si = StandIn()
    try:
        for n in range(senders):
            si.sb.mail.deliver(
                f"s{n}@w{n % 97}.example",
                name=f"Sender {n}",
                subject=f"Subject {n}",
                preview="The first words " * 8,
            )
        mr = start_service({**si.sb.env(), "MAILROOM_WEB_PASSWORD": HASH}, s.debounce)
        with mr:
            http, _ = _logged_in(mr)
            api = si.sb.total_requests("api")
            first, page = _timed_view(http)
            first_requests = si.sb.total_requests("api") - api
            shown = page.count('class="sender"')
            again: list[float] = []
            api = si.sb.total_requests("api")
            for _ in range(10 if senders > 100 else 3):
                again.append(_timed_view(http)[0])
            unchanged_requests = si.sb.total_requests("api") - api
            last_page = _timed_view(http, f"/screener?page={-(-senders // 100)}")[0]
            # A change pushed: the next view reads again, at most two requests.
            state = 'mailroom_eventsource_events_total{kind="state"}'
            seen = mr.metric(state)
            si.sb.mail.deliver("late@w-late.example", name="Late")
            wait_until(lambda: mr.metric(state) > seen, 30)  # the change was pushed
            api = si.sb.total_requests("api")
            late = "late@w-late.example" in _timed_view(http)[1]
            after_change = si.sb.total_requests("api") - api
            http.close()
            return {
                "senders_waiting": senders,
                "rows_on_first_page": shown,
                "first_view_s": round(first, 3),
                "first_view_requests": first_requests,
                "cached_view_s": percentiles(again),
                "cached_view_requests": unchanged_requests,
                "last_page_s": round(last_page, 3),
                "requests_per_view_after_change": after_change,
                "change_shown": late,
                "targets": {"view_s": 0.3, "requests_per_view": 2, "cached_requests": 0},
            }
    finally:
        si.close()


def bench_idle_memory(s: Sizes) -> dict[str, Any]:
    """Idle RSS of the service with the pages on (having served each page),
    with them off, and of the last build before the pages (a git worktree of
    :data:`BEFORE_PAGES`, when the checkout has it), on the same stand-in."""
    out: dict[str, Any] = {}
    runs: list[tuple[str, dict[str, str], str | None]] = [
        ("pages_off", {"MAILROOM_WEB": "off"}, None),
        ("pages_on", {"MAILROOM_WEB_PASSWORD": HASH}, None),
    ]
    with contextlib.ExitStack() as stack:
        before = stack.enter_context(_checkout(BEFORE_PAGES))
        if before is not None:
            runs.insert(0, ("before_pages", {}, before))
        for name, extra, cwd in runs:
            si = StandIn()
            try:
                for n in range(50):
                    si.sb.mail.deliver(f"m{n}@mem.example", name=f"M {n}")
                mr = start_service({**si.sb.env(), **extra}, s.debounce, cwd=cwd)
                with mr:
                    if name == "pages_on":
                        http, _ = _logged_in(mr)
                        for path in ("/screener", "/history", "/status"):
                            _timed_view(http, path)
                        http.close()
                    time.sleep(2)
                    out[name] = {"rss_mb": rss_mb(mr.proc.pid)}
            finally:
                si.close()
    base = out.get("before_pages", out["pages_off"])["rss_mb"]
    out["compared_with"] = "before_pages" if "before_pages" in out else "pages_off"
    out["difference_mb"] = round(out["pages_on"]["rss_mb"] - base, 1)
    out["target_difference_mb"] = 15
    return out


@contextlib.contextmanager
def _checkout(commit: str) -> Iterator[str | None]:
    """A worktree of ``commit`` (None when git or the commit is not there)."""
    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="mailroom-before-") as tmp:
        where = Path(tmp) / "tree"
        made = subprocess.run(
            ["git", "-C", str(root), "worktree", "add", "--detach", "-q", str(where), commit],
            capture_output=True,
            check=False,
        )
        if made.returncode != 0:
            yield None
            return
        try:
            yield str(where)
        finally:
            subprocess.run(
                ["git", "-C", str(root), "worktree", "remove", "--force", str(where)],
                capture_output=True,
                check=False,
            )


def bench_decision_over_link(s: Sizes) -> dict[str, Any]:
    """From the click (the form posted) to the account changed, over TLS with
    100 ms round trips to the mail server; the page answers once it is done."""
    from tests.bench.link import tls_link

    took: list[float] = []
    with tls_link(ContactsBackend.JMAP) as link:
        senders = [f"click{n}@link-web.example" for n in range(max(3, s.actions))]
        ids = {a: [link.sb.mail.deliver(a, name="Click") for _ in range(3)] for a in senders}
        mr = start_service({**link.env, "MAILROOM_WEB_PASSWORD": HASH}, s.debounce)
        with mr:
            http, token = _logged_in(mr)
            feed = link.sb.mail.mailbox_id("Feed")
            headers = {"Origin": mr.base, "Sec-Fetch-Site": "same-origin"}
            for address in senders:
                http.get("/screener")  # the page the click is made on
                started = time.perf_counter()
                resp = http.post(
                    "/screener/decide",
                    data={"csrf": token, "decide": f"1:{address}"},
                    headers=headers,
                )
                moved = all(feed in link.sb.mail.emails[i].mailbox_ids for i in ids[address])
                took.append(time.perf_counter() - started)
                if resp.status_code != 303 or not moved:
                    raise RuntimeError(f"decision on {address}: {resp.status_code}, moved={moved}")
            http.close()
    return {
        "one_way_latency_s": 0.05,
        "decisions": len(took),
        "click_to_changed_s": percentiles(took),
        "target_s": 1.0,
    }


def bench_flood(s: Sizes) -> dict[str, Any]:
    """The server's bounds, measured on the real service: /health answered while
    three times as many slow clients as it serves at once hold half-sent
    requests; an oversized head refused; a foreign Host refused."""
    from mailroom.web.server import MAX_CONNECTIONS, MAX_REQUEST

    si = StandIn()
    try:
        mr = start_service({**si.sb.env(), "MAILROOM_WEB_PASSWORD": HASH}, s.debounce)
        with mr:
            slow = []
            for _ in range(MAX_CONNECTIONS * 3):
                sock = socket.create_connection(("127.0.0.1", mr.port), timeout=10)
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                slow.append(sock)
            took = []
            for _ in range(10):
                started = time.perf_counter()
                ok = httpx.get(mr.base + "/health", timeout=10).status_code == 200
                took.append(time.perf_counter() - started)
                if not ok:
                    raise RuntimeError("/health did not answer during the flood")
            dropped = 0
            for sock in slow:
                try:
                    dropped += sock.recv(1) == b""
                except OSError:
                    dropped += 1
                sock.close()
            big = socket.create_connection(("127.0.0.1", mr.port), timeout=10)
            big.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nA: " + b"a" * 20_000 + b"\r\n\r\n")
            oversized = big.recv(64).split(b"\r\n")[0].decode()
            big.close()
            foreign = httpx.get(mr.base + "/screener", headers={"Host": "evil.example"}).status_code
        return {
            "slow_clients": len(slow),
            "served_at_once": MAX_CONNECTIONS,
            "health_during_flood_s": percentiles(took),
            "slow_clients_dropped": dropped,
            "oversized_head": oversized,
            "max_head_bytes": MAX_REQUEST,
            "foreign_host_status": foreign,
            "target_health_s": 1.0,
        }
    finally:
        si.close()


def web_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The pages' rows of bench/results.md."""

    def get(*path: str) -> Any:
        return pick(r, *path)

    cached = get("web_screener", "cached_view_s")
    decision = get("web_decision", "click_to_changed_s")
    flood = get("web_flood", "health_during_flood_s")
    return [
        (
            "Flood of slow clients (three times the 32 served): /health p99 (s) / dropped / "
            "oversized head / foreign Host",
            " / ".join(
                str(v)
                for v in (
                    flood.get("p99", "n/a") if isinstance(flood, dict) else "n/a",
                    get("web_flood", "slow_clients_dropped"),
                    get("web_flood", "oversized_head"),
                    get("web_flood", "foreign_host_status"),
                )
            ),
            "≤ 1.0 / all / 400 / 421",
        ),
        (
            f"Screener page, {get('web_screener', 'senders_waiting')} senders waiting: first view "
            "/ cached p95 / last page (s)",
            " / ".join(
                str(v)
                for v in (
                    get("web_screener", "first_view_s"),
                    cached.get("p95", "n/a") if isinstance(cached, dict) else "n/a",
                    get("web_screener", "last_page_s"),
                )
            ),
            "≤ 0.3",
        ),
        (
            "Screener page: JMAP requests per view / while nothing changed / after a change",
            " / ".join(
                str(get("web_screener", k))
                for k in (
                    "first_view_requests",
                    "cached_view_requests",
                    "requests_per_view_after_change",
                )
            ),
            "≤ 2 / 0 / ≤ 2",
        ),
        (
            "Link: a decision from the click to the account changed (s, p99)",
            str(decision.get("p99", "n/a")) if isinstance(decision, dict) else "n/a",
            "≤ 1.0",
        ),
        (
            "Idle RSS, pages on / off / the build before the pages / difference (MB)",
            " / ".join(
                str(v)
                for v in (
                    get("web_memory", "pages_on", "rss_mb"),
                    get("web_memory", "pages_off", "rss_mb"),
                    get("web_memory", "before_pages", "rss_mb"),
                    get("web_memory", "difference_mb"),
                )
            ),
            "difference ≤ 15",
        ),
    ]
