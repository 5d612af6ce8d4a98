"""The status page: pure rendering, and the real page in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mailroom.observe.history import PassEntry, TriagedEntry
from mailroom.observe.status_page import PageView, render
from mailroom.push.connection import STATES, transitions
from tests.faults import FaultySandbox
from tests.process import MailroomProcess, wait_until

# The picture in docs/operations.md: `SCREENSHOT_TO=docs/status-page.png` renews it;
# otherwise the test keeps its screenshot to itself and the checkout stays clean.
SCREENSHOT = os.environ.get("SCREENSHOT_TO")
EVIL = "<script>document.title='pwned'</script>@evil.example"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def view(**overrides: object) -> PageView:
    base: dict[str, object] = {
        "status": "warn",
        "output": "push is backoff; polling carries triage",
        "version": "1.2.3",
        "dry_run": False,
        "state": "backoff",
        "state_since": 1_700_000_000.0,
        "states": STATES,
        "transitions": transitions(),
        "passes": [PassEntry(1_700_000_100.0, "push", 2, 0.41, None)],
        "senders": [TriagedEntry(1_700_000_100.0, EVIL, "Feed")],
        "last_error": "EventSource: connection reset <b>",
        "now": 1_700_000_130.0,
    }
    base.update(overrides)
    return PageView(**base)  # type: ignore[arg-type]


def test_the_page_escapes_everything_and_runs_no_script() -> None:
    page = render(view())
    # Its one script is its own file (the reload with a pause), nothing inline.
    assert re.findall(r"<script[^>]*>", page) == [
        '<script src="/static/refresh.js" defer data-seconds="5">'
    ]
    assert "pwned" not in page.split("<body>")[0]
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;@evil.example" in page
    assert "connection reset &lt;b&gt;" in page
    # No external assets: the only links are to its own endpoints.
    assert set(re.findall(r'(?:href|src)="([^"]*)"', page)) == {
        "",
        "/health",
        "/metrics",
        "/static/refresh.js",
    }
    assert "http-equiv" not in page


def test_the_diagram_highlights_the_current_state_only() -> None:
    page = render(view(state="degraded"))
    current = re.findall(r'<g class="state current" data-state="(\w+)"', page)
    assert current == ["degraded"]
    assert set(re.findall(r'data-state="(\w+)"', page)) == set(STATES)
    assert page.count('marker-end="url(#arrow)"') == len(set(transitions()))


def test_an_empty_page_says_so() -> None:
    page = render(view(passes=[], senders=[], last_error=None, output=None, status="pass"))
    assert "no pass yet" in page and "no decision yet" in page
    assert '<p id="last-error">none</p>' in page


def _label_gone(sb: FaultySandbox, email_id: str, label: str) -> Callable[[], bool]:
    return lambda: label not in sb.mail.mailbox_names(email_id)


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium not installed (Debian: apt install chromium)",
)
@pytest.mark.slow
def test_the_page_in_a_real_browser(tmp_path: Path) -> None:
    with FaultySandbox() as sb:
        sb.prepare()
        env = {**sb.env("jmap"), "MAILROOM_DEBOUNCE_SECONDS": "0.2"}
        with MailroomProcess(env) as mr:
            assert wait_until(lambda: mr.push_state() == "connected", 30), mr.log
            for sender, name, label in (
                (EVIL, "Evil", "@ToJail"),
                ("news@acme.example", "Acme News", "@ToFeed"),
                ("jane@family.example", "Jane Doe", "@ToPerson"),
            ):
                eid = sb.mail.deliver(sender, name=name)
                sb.mail.set_mailboxes(eid, {"Screener", label})
                assert wait_until(_label_gone(sb, eid, label), 30)
            profile = tmp_path / "profile"
            dom = _chromium(f"--user-data-dir={profile}", "--dump-dom", mr.base + "/")
            assert dom.returncode == 0, dom.stderr[-2000:]
            html = dom.stdout
            screenshot = Path(SCREENSHOT).resolve() if SCREENSHOT else tmp_path / "page.png"
            shot = _chromium(
                f"--user-data-dir={profile}",
                f"--screenshot={screenshot}",
                "--window-size=1000,1400",
                mr.base + "/",
            )
            assert shot.returncode == 0, shot.stderr[-2000:]
    # What the browser built: state, a pass, the triaged senders …
    assert '<strong id="state">CONNECTED</strong>' in html
    assert re.search(r'<g class="state current" data-state="connected">', html)
    assert re.search(r"<td>push</td><td>\d+</td><td>[\d.]+ s</td><td>ok</td>", html)
    assert '<td class="sender">news@acme.example</td><td>Feed</td>' in html
    # … and the address with a <script> in it shown as text, never run.
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;@evil.example" in html
    assert "<script>" not in html.lower()
    assert "<title>Mailroom: pass</title>" in html  # the title the page set, untouched
    assert screenshot.stat().st_size > 10_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
