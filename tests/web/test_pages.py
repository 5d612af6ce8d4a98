"""The pages of a real ``mailroom run`` against the stand-in, over loopback:
logging in, deciding, taking back, history; and the attacks, each refused.

Outcomes are read from the account (mailboxes, contact groups) and the ledger,
not from what the page says it did.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from mailroom.ledger.location import FILE_NAME
from mailroom.ledger.reading import Filter
from mailroom.ledger.store import Ledger
from mailroom.web.auth import FREE_FAILURES, hash_password
from tests.faults import FaultySandbox
from tests.process import MailroomProcess, wait_until

PASSWORD = "correct horse battery staple"
HASH = hash_password(PASSWORD)
EVIL_NAME = "<script>document.title='pwned'</script>"


class Browserless:
    """The pages driven by plain HTTP the way a browser posts forms."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=30, follow_redirects=False)

    def post(self, path: str, data: Mapping[str, object], **headers: str) -> httpx.Response:
        sent = {"Origin": self.base, "Sec-Fetch-Site": "same-origin", **headers}
        return self.http.post(path, data=data, headers={k: v for k, v in sent.items() if v})

    def login(self) -> None:
        resp = self.post("/login", {"password": PASSWORD})
        assert resp.status_code == 303 and resp.headers["location"] == "/screener"

    def csrf(self, path: str = "/screener") -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.http.get(path).text)
        assert found is not None
        return found.group(1)


@pytest.fixture
def running() -> Iterator[tuple[FaultySandbox, MailroomProcess, Browserless]]:
    with FaultySandbox() as sb:
        sb.mail.deliver("ann@a.example", name="Ann", subject="Hello", preview="First words")
        sb.mail.deliver("bob@b.example", name="Bob", subject="Invoice 1")
        sb.mail.deliver("bob@b.example", name="Bob", subject="Invoice 2")
        sb.mail.deliver("carl@b.example", name="Carl", subject="From the same firm")
        sb.mail.deliver("eve@evil.example", name=EVIL_NAME, subject="<b>bold</b>")
        sb.mail.deliver(sb.username, mailboxes=["Sent"], cc=["carl@b.example"])
        env = {**sb.env(), "MAILROOM_WEB_PASSWORD": HASH, "MAILROOM_DEBOUNCE_SECONDS": "60"}
        with MailroomProcess(env) as proc:
            assert wait_until(lambda: proc.health()[1].get("status") == "pass", 60), proc.log
            yield sb, proc, Browserless(proc.base)


def _ledger(sb: FaultySandbox) -> Ledger:
    ledger, _ = Ledger.open(Path(sb.env()["MAILROOM_STATE_DIR"]) / FILE_NAME)
    return ledger


def _in(sb: FaultySandbox, sender: str) -> set[str]:
    with sb.mail.lock:
        ids = [e.id for e in sb.mail.emails.values() if e.from_[0]["email"] == sender]
    return set().union(*(sb.mail.mailbox_names(i) for i in ids))


def test_decide_and_take_back_from_the_pages(
    running: tuple[FaultySandbox, MailroomProcess, Browserless],
) -> None:
    sb, _, web = running
    assert web.http.get("/screener").headers["location"] == "/login"
    web.login()
    cookie = web.http.cookies.jar
    (session,) = [c for c in cookie if c.name == "mailroom_session"]
    assert session.has_nonstandard_attr("HttpOnly") and not session.secure
    before = sb.total_requests("api")
    page = web.http.get("/screener")
    assert page.status_code == 200
    assert sb.total_requests("api") - before <= 2  # one view, at most two JMAP requests
    assert "4 senders waiting" in page.text
    assert "First words" in page.text and "Invoice 2" in page.text  # newest subject
    # Whom the user wrote to is said on their row (the view's second request).
    items = page.text.split('<li class="sender"')[1:]
    wrote = [r for r in items if "you wrote to them" in r]
    assert len(wrote) == 1 and 'data-address="carl@b.example"' in wrote[0]
    assert "<script>document" not in page.text
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in page.text
    assert "&lt;b&gt;bold&lt;/b&gt;" in page.text
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    token = web.csrf()
    # Shown again while nothing changed: not one request to the mail server.
    before = sb.total_requests("api")
    assert "4 senders waiting" in web.http.get("/screener").text
    assert sb.total_requests("api") == before
    # Ann into the Feed with her row's button: done before the answer comes.
    feed = _index(page.text, "Feed")
    resp = web.post("/screener/decide", {"csrf": token, "decide": f"{feed}:ann@a.example"})
    assert resp.status_code == 303
    assert _in(sb, "ann@a.example") == {"Feed"}
    assert sb.contacts.groups_of_address("ann@a.example") == {"Feed"}
    after = web.http.get("/screener").text
    assert "3 senders waiting" in after and 'data-address="ann@a.example"' not in after
    assert "Undo <bdi>ann@a.example</bdi>" in after
    # Bob for his whole domain, ticked, with the bulk button: Carl goes too.
    paper = _index(page.text, "Paper Trail")
    resp = web.post(
        "/screener/decide",
        {
            "csrf": token,
            "sender": ["bob@b.example"],
            "domain": ["bob@b.example"],
            "category": paper,
        },
    )
    assert resp.status_code == 303
    assert _in(sb, "bob@b.example") == _in(sb, "carl@b.example") == {"Paper Trail"}
    ledger = _ledger(sb)
    try:
        rows = ledger.history(Filter())
        assert {(d.intent.subject, d.intent.trigger) for d in rows} >= {
            ("ann@a.example", "web"),
            ("@b.example", "web"),
            ("bob@b.example", "web"),
            ("carl@b.example", "web"),
        }
    finally:
        ledger.close()
    # Ann taken back from the row's Undo.
    resp = web.post("/undo", {"csrf": token, "subject": "ann@a.example"})
    assert resp.status_code == 303
    assert _in(sb, "ann@a.example") == {"Screener"}
    assert sb.contacts.groups_of_address("ann@a.example") == set()
    # The domain rule taken back from history.
    history = web.http.get("/history").text
    assert "@b.example" in history and "Domain and list rules" in history
    resp = web.post("/undo", {"csrf": token, "subject": "@b.example", "back": "history"})
    assert resp.status_code == 303 and resp.headers["location"] == "/history"
    assert _in(sb, "bob@b.example") == _in(sb, "carl@b.example") == {"Screener"}
    trail = web.http.get("/history", params={"q": "b.example"}).text
    assert trail.count("taken back") >= 3
    assert "4 senders waiting" in web.http.get("/screener").text
    # Logging out ends the session.
    assert web.post("/logout", {"csrf": token}).status_code == 303
    assert web.http.get("/screener").headers["location"] == "/login"


def _index(page: str, category: str) -> str:
    found = re.search(rf'name="category" value="(\d+)">{category}<', page)
    assert found is not None
    return found.group(1)


def test_the_attacks_are_refused(
    running: tuple[FaultySandbox, MailroomProcess, Browserless],
) -> None:
    sb, proc, web = running
    web.login()
    token = web.csrf()
    row = {"decide": "0:ann@a.example"}
    # A form posted from another site, with the right token even.
    for headers in (
        {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://evil.example", "Sec-Fetch-Site": ""},
        {"Origin": "null", "Sec-Fetch-Site": ""},
        {"Origin": "null", "Sec-Fetch-Site": "same-site"},
        {"Origin": "", "Sec-Fetch-Site": ""},
    ):
        resp = web.post("/screener/decide", {"csrf": token, **row}, **headers)
        assert resp.status_code == 403, headers
    # No token, a wrong one.
    assert web.post("/screener/decide", row).status_code == 403
    assert web.post("/screener/decide", {"csrf": token[:-2] + "xx", **row}).status_code == 403
    # No session: to the login, nothing done.
    stranger = Browserless(proc.base)
    resp = stranger.post("/screener/decide", {"csrf": token, **row})
    assert resp.status_code == 303 and resp.headers["location"] == "/login"
    assert _in(sb, "ann@a.example") == {"Screener"}
    # A foreign Host (DNS rebinding): 421, nothing shown.
    resp = web.http.get("/screener", headers={"Host": f"evil.example:{proc.port}"})
    assert resp.status_code == 421 and resp.content == b""
    # Oversized and unbounded forms.
    assert (
        web.post("/screener/decide", {"csrf": token, "sender": ["x@y.z"] * 20000}).status_code
        == 413
    )
    # A body without a length given up front (chunked): refused unread.
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as raw:
        raw.sendall(
            b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: "
            + proc.base.encode()
            + b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab=cd\r\n0\r\n\r\n"
        )
        assert raw.recv(100).startswith(b"HTTP/1.1 411")
    # Ten wrong passwords: the later ones wait, and say how long.
    codes = [stranger.post("/login", {"password": f"guess {n}"}).status_code for n in range(10)]
    assert codes[:FREE_FAILURES] == [401] * FREE_FAILURES
    assert 429 in codes[FREE_FAILURES:]
    slowed = stranger.post("/login", {"password": PASSWORD})
    assert slowed.status_code == 429 and int(slowed.headers["retry-after"]) >= 1
    assert "login failed" in proc.log and "guess" not in proc.log and PASSWORD not in proc.log
    # The monitors stay open and show no address.
    health = httpx.get(proc.base + "/health").text
    assert "@" not in health.replace("@ToScreener", "")
    assert _in(sb, "ann@a.example") == {"Screener"}


def test_a_thousand_waiting_senders_render_a_hundred_a_page() -> None:
    with FaultySandbox() as sb:
        for n in range(1000):
            sb.mail.deliver(f"s{n:04d}@bulk{n % 13}.example", name=f"Sender {n}")
        env = {**sb.env(), "MAILROOM_WEB_PASSWORD": HASH}
        with MailroomProcess(env) as proc:
            assert wait_until(lambda: proc.health()[1].get("status") == "pass", 60), proc.log
            web = Browserless(proc.base)
            web.login()
            before = sb.total_requests("api")
            first = web.http.get("/screener").text
            assert sb.total_requests("api") - before <= 2
            assert "1000 senders waiting" in first
            assert first.count('class="sender"') == 100
            assert 'data-address="s0999@bulk11.example"' in first  # newest first
            assert "page 1 of 10" in first
            before = sb.total_requests("api")
            last = web.http.get("/screener", params={"page": "10"}).text
            # The Screener read is shared; only whom of this page you wrote to is asked.
            assert sb.total_requests("api") - before == 1
            before = sb.total_requests("api")
            assert last.count('class="sender"') == 100
            assert 'data-address="s0000@bulk0.example"' in last
            beyond = web.http.get("/screener", params={"page": "99999999"}).text
            assert "page 10 of 10" in beyond
            assert sb.total_requests("api") == before  # that page again: nothing asked


def test_a_dry_run_shows_the_screener_and_changes_nothing() -> None:
    with FaultySandbox() as sb:
        sb.mail.deliver("ann@a.example", name="Ann")
        env = {**sb.env(), "MAILROOM_WEB_PASSWORD": HASH}
        with MailroomProcess(env, args=("--dry-run",)) as proc:
            assert wait_until(lambda: proc.health()[1].get("status") == "pass", 60), proc.log
            web = Browserless(proc.base)
            web.login()
            page = web.http.get("/screener").text
            assert "1 sender waiting" in page and "Dry run" in page
            resp = web.post("/screener/decide", {"csrf": web.csrf(), "decide": "1:ann@a.example"})
            assert resp.status_code == 409 and "dry run" in resp.text
            assert _in(sb, "ann@a.example") == {"Screener"}


def test_a_mailing_list_decision_is_shown_and_taken_back_from_history() -> None:
    with FaultySandbox() as sb:
        sb.prepare()
        users = [("List-Id", "Users <users.list.example>")]
        posts = [sb.mail.deliver(s, headers=users) for s in ("a@x.com", "b@y.org")]
        sb.mail.set_mailboxes(posts[0], {"Screener", "@ToFeed", "@WholeList"})
        env = {**sb.env(), "MAILROOM_WEB_PASSWORD": HASH}
        with MailroomProcess(env) as proc:
            assert wait_until(lambda: sb.mail.mailbox_names(posts[1]) == {"Feed"}, 60), proc.log
            web = Browserless(proc.base)
            web.login()
            history = web.http.get("/history").text
            assert "list:users.list.example" in history
            assert 'aria-label="Undo list:users.list.example"' in history
            trail = web.http.get("/history", params={"q": "list:<Users.List.Example>"}).text
            assert "into Feed" in trail
            token = web.csrf("/history")
            resp = web.post("/undo", {"csrf": token, "subject": "list:users.list.example"})
            assert resp.status_code == 303
            assert all(sb.mail.mailbox_names(p) == {"Screener"} for p in posts)


def test_a_mailing_list_waits_as_one_row_and_is_decided_from_it() -> None:
    with FaultySandbox() as sb:
        sb.prepare()
        users = [("List-Id", '"Mailroom <b>users</b>" <Users.List.Example>')]
        posts = [
            sb.mail.deliver(s, headers=users, subject=f"Post {i}")
            for i, s in enumerate(("a@x.com", "b@y.org", "a@x.com"))
        ]
        alone = sb.mail.deliver("a@x.com", name="Ann", subject="Just to you")
        env = {**sb.env(), "MAILROOM_WEB_PASSWORD": HASH, "MAILROOM_DEBOUNCE_SECONDS": "60"}
        with MailroomProcess(env) as proc:
            assert wait_until(lambda: proc.health()[1].get("status") == "pass", 60), proc.log
            web = Browserless(proc.base)
            web.login()
            page = web.http.get("/screener").text
            assert "1 sender, 1 list waiting" in page
            assert "Mailroom &lt;b&gt;users&lt;/b&gt;" in page  # the list's name, as text
            assert "3 posts from 2 people" in page and "Post 2" in page
            assert page.count('data-address="a@x.com"') == 1  # Ann's own mail, apart
            found = re.search(
                r'value="(\d+):users\.list\.example" '
                r'aria-label="Feed: the whole list users\.list\.example"',
                page,
            )
            assert found is not None
            feed = found.group(1)
            token = web.csrf()
            bad = web.post("/screener/decide", {"csrf": token, "list": f"{feed}:not a list"})
            assert bad.status_code == 400
            resp = web.post(
                "/screener/decide", {"csrf": token, "list": f"{feed}:users.list.example"}
            )
            assert resp.status_code == 303
            assert all(sb.mail.mailbox_names(p) == {"Feed"} for p in posts)
            assert sb.mail.mailbox_names(alone) == {"Screener"}  # not the list's
            assert sb.contacts.groups_of_address("a@x.com") == set()  # no contact changed
            ledger = _ledger(sb)
            try:
                (decision,) = ledger.history(Filter())
            finally:
                ledger.close()
            assert decision.intent.subject == "list:users.list.example"
            assert decision.intent.trigger == "web" and decision.outcome.value == "done"
            after = web.http.get("/screener").text
            assert "1 sender waiting" in after and "Mailing lists" not in after
            assert "Undo <bdi>list:users.list.example</bdi>" in after
            web.post("/undo", {"csrf": web.csrf(), "subject": "list:users.list.example"})
            assert all(sb.mail.mailbox_names(p) == {"Screener"} for p in posts)
