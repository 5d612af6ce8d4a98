"""check, setup, status, dry run and the systemd unit, against the stand-in."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from mailroom.account.categories import DEFAULT_CATEGORIES_JSON, parse_categories
from mailroom.account.fastmail_rules import fastmail_rules
from mailroom.commands.check import run_check
from mailroom.commands.report import Report
from mailroom.commands.setup import run_setup
from mailroom.commands.status import default_url, run_status
from mailroom.commands.unit import UnitError, UnitKind, render_unit
from mailroom.settings import load_settings
from tests.faults import FaultySandbox
from tests.push.harness import FAST, running

pytestmark = pytest.mark.anyio


async def check(sb: FaultySandbox, contacts: str = "carddav", **extra: str) -> tuple[int, str]:
    out = io.StringIO()
    code = await run_check(load_settings({**sb.env(contacts), **extra}), Report(out))
    return code, out.getvalue()


async def test_check_a_healthy_account() -> None:
    for flavour, contacts, line in (
        (
            "fastmail",
            "carddav",
            "✓ contacts over CardDAV (MAILROOM_CONTACTS=auto and a CardDAV password is set): "
            "CardDAV address book http://",
        ),
        (
            "fastmail",
            "jmap",
            "✓ contacts over JMAP contacts (MAILROOM_CONTACTS=auto, the server offers "
            "urn:ietf:params:jmap:contacts and no CardDAV password is set): JMAP contacts "
            "(RFC 9610), address book 'Personal'",
        ),
        ("rfc", "carddav", "✓ contacts over CardDAV"),
    ):
        with FaultySandbox(flavour=flavour) as sb:
            sb.prepare()
            code, text = await check(sb, contacts)
            assert code == 0, text
            assert "✓ JMAP: token accepted" in text
            assert line in text
            assert "✓ mailbox '@ToFeed' (label for Feed) exists" in text
            assert "✓ contact group 'Person' (contact group of Person) exists" in text
            assert "✓ event stream: first" in text
            assert (
                "· your own addresses, never triaged (mail from them gets the error label): "
                "user@sandbox.test (from the session's username, an identity)" in text
            )
            assert "no sender waiting in the Screener is someone you have written to" in text
            assert "✗" not in text


async def test_check_and_setup_say_who_waiting_you_have_written_to() -> None:
    with FaultySandbox() as sb:
        sb.prepare()
        sb.mail.deliver(sb.username, mailboxes=["Sent"], to=["pal@x.com", "friend@y.org"])
        sb.mail.deliver("pal@x.com")
        sb.mail.deliver("friend@y.org")
        sb.mail.deliver("stranger@z.net")
        _, text = await check(sb)
        assert (
            "· 2 senders waiting in the Screener you have written to: set MAILROOM_TRUST_SENT "
            "to a category (Imbox, say)" in text
        )
        _, text = await check(sb, MAILROOM_TRUST_SENT="imbox")
        assert "MAILROOM_TRUST_SENT=Imbox files them on the service's next pass" in text
        out = io.StringIO()
        settings = load_settings({**sb.env(), "MAILROOM_TRUST_SENT": "Imbox"})
        await run_setup(settings, apply=False, create_screener=False, report=Report(out))
        assert "2 senders waiting in the Screener you have written to" in out.getvalue()


async def test_check_names_each_problem_and_its_fix() -> None:
    with FaultySandbox() as sb:
        sb.prepare()
        code, text = await check(sb, MAILROOM_JMAP_TOKEN="wrong-token")
        assert code == 1
        assert "✗ JMAP: JMAP session: server rejected the token (HTTP 401)" in text
        assert "fix: create a Fastmail API token with the Mail and Contacts scopes" in text
        assert "wrong-token" not in text

        code, text = await check(sb, MAILROOM_CARDDAV_PASSWORD="wrong-password")
        assert code == 1 and "fix: create a Fastmail app password" in text

        with sb.mail.lock:
            del sb.mail.mailboxes[sb.mail.mailbox_id("Feed")]
        jail = next(n for n, c in sb.contacts.cards.items() if "FN:Jail" in c.text)
        del sb.contacts.cards[jail]
        sb.faults.force("eventsource", 403)
        code, text = await check(sb, MAILROOM_TRIAGE_CATEGORIES=_with_role_label())
        assert code == 1
        assert "✗ mailbox 'Feed' (destination of Feed) is missing" in text
        assert "✗ contact group 'Jail' (contact group of Jail) is missing" in text
        assert "fix: run `mailroom setup --apply`" in text
        assert "✗ the label 'Archive' is the account's archive mailbox" in text
        assert "✗ event stream: EventSource answered HTTP 403" in text
    # Nothing there at all: unreachable, named.
    code, text = await check(sb)
    assert code == 1 and "✗ JMAP:" in text and "fix: check MAILROOM_JMAP_SESSION_URL" in text


async def test_check_on_a_new_account_says_once_to_run_setup() -> None:
    with FaultySandbox() as sb:
        sb.mail.ensure_mailbox("Screener")  # the user's own; nothing of Mailroom's yet
        code, text = await check(sb)
        assert code == 1
        lines = [line for line in text.splitlines() if line.startswith("✗")]
        assert lines == [
            "✗ not set up yet: the 19 mailboxes and contact groups the settings need are missing"
        ], text
        assert "fix: run `mailroom setup` to list them, then `mailroom setup --apply`" in text
        assert "✓ mailbox 'Screener' (the Screener) exists" in text


async def test_check_names_a_contacts_backend_that_cannot_be_used() -> None:
    with FaultySandbox(flavour="rfc") as sb:  # a server without RFC 9610, like Cyrus
        sb.prepare()
        code, text = await check(sb, "jmap", MAILROOM_CONTACTS="jmap")
        assert code == 1
        assert (
            "✗ contacts: MAILROOM_CONTACTS=jmap, but the JMAP session offers no "
            "urn:ietf:params:jmap:contacts" in text
        )
        code, text = await check(sb, "jmap")
        assert code == 1
        assert "✗ contacts: no way to reach contacts: the JMAP session offers no" in text
        assert "no CardDAV password is set" in text


def _with_role_label() -> str:
    cats = json.loads(DEFAULT_CATEGORIES_JSON)
    cats.append({"name": "Old", "label": "Archive"})
    return json.dumps(cats)


async def test_setup_plans_then_applies_once_and_prints_the_rules() -> None:
    with FaultySandbox() as sb:
        settings = load_settings(sb.env())
        before = (sb.mail.states(), dict(sb.contacts.cards))

        out = io.StringIO()
        code = await run_setup(settings, apply=False, create_screener=False, report=Report(out))
        text = out.getvalue()
        assert code == 1  # no Screener, and not asked to make it
        assert "✗ missing: mailbox 'Screener' (the Screener)" in text
        assert "· would create mailbox '@ToFeed' (label for Feed)" in text
        assert "· would create contact group 'Person' (contact group of Person)" in text
        assert (sb.mail.states(), dict(sb.contacts.cards)) == before  # a dry run

        out = io.StringIO()
        code = await run_setup(settings, apply=True, create_screener=True, report=Report(out))
        assert code == 0, out.getvalue()
        assert "✓ created mailbox 'Screener' (the Screener)" in out.getvalue()
        assert sb.contacts.groups_named("Imbox") == 1

        out = io.StringIO()
        code = await run_setup(settings, apply=True, create_screener=True, report=Report(out))
        assert code == 0
        assert "nothing to create" in out.getvalue()
        assert "created" not in out.getvalue()
        assert sb.contacts.groups_named("Imbox") == 1


async def test_setup_over_jmap_contacts_makes_groups_carddav_sees() -> None:
    with FaultySandbox() as sb:
        settings = load_settings(sb.env("jmap"))
        out = io.StringIO()
        code = await run_setup(settings, apply=True, create_screener=True, report=Report(out))
        text = out.getvalue()
        assert code == 0, text
        assert "· contacts over JMAP (MAILROOM_CONTACTS=auto, the server offers" in text
        assert "✓ created contact group 'Person' (contact group of Person)" in text
        # One store: the groups are vCard group cards for a CardDAV client too.
        for group in ("Imbox", "Feed", "Paper Trail", "Jail", "Person"):
            assert sb.contacts.groups_named(group) == 1


def test_the_rules_are_in_order_children_first_screener_last() -> None:
    rules = fastmail_rules(parse_categories(DEFAULT_CATEGORIES_JSON), "Screener")
    assert rules[0].startswith('1. If the sender is a member of the contact group "Person"')
    imbox = next(r for r in rules if '"Imbox":' in r)
    assert 'keep it in the Inbox and add the label "Imbox"' in imbox
    assert any('group "Paper Trail": move it to "Paper Trail"' in r for r in rules)
    assert rules[-1] == (
        '6. If the sender is not in my contacts: move it to "Screener". (Keep this rule last.)'
    )


async def test_dry_run_leaves_the_server_byte_for_byte_unchanged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    caplog.set_level(logging.INFO, "mailroom.triage")
    with FaultySandbox() as sb:
        sb.prepare()
        ids = [sb.mail.deliver("news@acme.example") for _ in range(3)]
        sb.mail.set_mailboxes(ids[0], {"Screener", "@ToFeed"})
        other = sb.mail.deliver("bank@x.example")
        sb.mail.set_mailboxes(other, {"Screener", "@ToFeed", "@ToJail"})
        before = _snapshot(sb)
        async with running(sb, FAST, dry_run=True) as run:
            await run.until(lambda: run.polls("startup") + run.polls("catchup") >= 1)
            sb.mail.deliver("nudge@x.example")  # a push pass too
            await run.until(lambda: run.polls("push") >= 1)
            body = (await run.health())[1]
            assert body["dry_run"] is True
            assert await run.metric("mailroom_dry_run") == 1
        after = _snapshot(sb)
        assert after["cards"] == before["cards"]
        assert {k: v for k, v in after["emails"].items() if k in before["emails"]} == before[
            "emails"
        ]
    lines = [r for r in caplog.records if r.getMessage() == "dry run: would triage sender"]
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["sender"] == "news@acme.example" and fields["emails_refiled"] == 3
    assert fields["contact"] == "create" and fields["join"] == "Feed"
    assert any(r.getMessage() == "would add the error label" for r in caplog.records)


def _snapshot(sb: FaultySandbox) -> dict[str, Any]:
    with sb.mail.lock:
        emails = {e.id: sorted(e.mailbox_ids) for e in sb.mail.emails.values()}
    with sb.contacts.lock:
        cards = {n: (c.etag, c.text) for n, c in sb.contacts.cards.items()}
    return {"emails": emails, "cards": cards}


@pytest.fixture
def health_server() -> Iterator[dict[str, Any]]:
    """A fake /health to read: its body and status are set by the test."""
    state: dict[str, Any] = {"status": 200, "body": {}}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = json.dumps(state["body"]).encode()
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/health+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/health"
    yield state
    server.shutdown()
    server.server_close()


def test_status_prints_for_a_person_and_exits_by_health(health_server: dict[str, Any]) -> None:
    body = {
        "status": "warn",
        "version": "0.1.0",
        "dry_run": True,
        "output": "push is degraded; polling carries triage",
        "eventsource": {
            "status": "degraded",
            "connected_since": None,
            "last_event_at": "2026-11-21T10:00:00Z",
            "reconnect_count": 4,
            "last_error": "EventSource answered HTTP 503",
        },
        "polling": {
            "last_success_at": "2026-11-21T10:01:00Z",
            "last_trigger": "fallback",
            "consecutive_failures": 0,
            "last_error": None,
            "interval_seconds": 60.0,
        },
    }
    health_server["body"] = body
    out = io.StringIO()
    assert run_status(health_server["url"], out) == 1
    text = out.getvalue()
    assert text.startswith("Mailroom 0.1.0: WARN (dry run: nothing is written)")
    assert "push:         DEGRADED" in text
    assert "reconnects:   4" in text
    assert "push error:   EventSource answered HTTP 503" in text
    assert "last pass:    2026-11-21T10:01:00Z (trigger fallback)" in text
    for status, code in (("pass", 0), ("fail", 2)):
        health_server["body"] = {**body, "status": status}
        assert run_status(health_server["url"], io.StringIO()) == code
    out = io.StringIO()
    assert run_status("127.0.0.1:9", out) == 3  # host:port alone is enough
    assert out.getvalue() == (
        "mailroom status: nothing answers at http://127.0.0.1:9/health: is `mailroom run` "
        "running? (`systemctl status mailroom` for the unit; --url for another instance, "
        "MAILROOM_HTTP_HOST/PORT for where this one listens)\n"
    )
    assert default_url({"MAILROOM_HTTP_HOST": "0.0.0.0", "MAILROOM_HTTP_PORT": "9000"}) == (  # noqa: S104
        "http://127.0.0.1:9000/health"
    )


def test_status_as_a_container_health_check(health_server: dict[str, Any]) -> None:
    """Two codes, as engines read them: 0 while triage works, 1 once it stopped."""
    for status, code in (("pass", 0), ("warn", 0), ("fail", 1)):
        health_server["body"] = {"status": status, "version": "0.1.0", "output": "why"}
        out = io.StringIO()
        assert run_status(health_server["url"], out, healthcheck=True) == code
        assert out.getvalue() == f"Mailroom 0.1.0: {status.upper()}\n"  # one line
    out = io.StringIO()
    assert run_status("127.0.0.1:9", out, healthcheck=True) == 1
    assert out.getvalue().startswith("mailroom status: nothing answers at")
    assert out.getvalue().count("\n") == 1


async def test_status_against_a_running_service() -> None:
    with FaultySandbox() as sb:
        async with running(sb) as run:
            host, port = run.app.server.address
            out = io.StringIO()
            code = await asyncio.to_thread(run_status, f"http://{host}:{port}/health", out)
            assert code == 0, out.getvalue()
            assert "PASS" in out.getvalue() and "push:         CONNECTED since" in out.getvalue()
            # The instance's base URL, with or without its slash, reads /health too.
            for base in (f"http://{host}:{port}", f"http://{host}:{port}/", f"{host}:{port}"):
                out = io.StringIO()
                assert await asyncio.to_thread(run_status, base, out) == 0, out.getvalue()
                assert "PASS" in out.getvalue()
            # Any other page is named as not being the health JSON.
            out = io.StringIO()
            code = await asyncio.to_thread(run_status, f"http://{host}:{port}/metrics", out)
            assert code == 3
            assert "not Mailroom's health JSON" in out.getvalue()
            assert "Expecting value" not in out.getvalue()


NEEDS_SYSTEMD = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None and os.environ.get("CI") != "true",
    reason="needs systemd-analyze (Debian's systemd package; CI installs it)",
)


def stub_command(tmp_path: Path) -> str:
    """An installed-looking command outside any home (verify checks ExecStart exists)."""
    command = tmp_path / "opt" / "mailroom" / "bin" / "mailroom"
    command.parent.mkdir(parents=True)
    command.write_text("#!/bin/sh\n")
    command.chmod(0o755)
    return str(command)


def verify(unit: Path, *, user: bool = False) -> str:
    """systemd-analyze verify's complaints about the unit (empty: none)."""
    env = {**os.environ}
    argv = ["systemd-analyze", "verify", str(unit)]
    if user:
        runtime = unit.parent / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(runtime)
        argv.insert(1, "--user")
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 0, done.stderr
    return "\n".join(line for line in done.stderr.splitlines() if unit.name in line)


def exposure(unit: Path) -> float:
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    return float(security.stdout.split("Overall exposure level for")[1].split(":")[1].split()[0])


@NEEDS_SYSTEMD
def test_the_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    command = stub_command(tmp_path)
    unit = tmp_path / "mailroom.service"
    unit.write_text(render_unit(command))
    assert f"ExecStart={command} run" in unit.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "EnvironmentFile=",
        "LoadCredential=jmap-token:",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "MemoryMax=200M",
        "StateDirectory=mailroom\n",  # the ledger, writable under DynamicUser=
    ):
        assert line in unit.read_text()
    assert verify(unit) == ""
    assert exposure(unit) < 2.0
    installed = Path(sys.executable).with_name("mailroom")
    printed = subprocess.run(
        [str(installed), "systemd-unit"], capture_output=True, text=True, check=False
    )
    if printed.returncode == 0:  # (a checkout under /home or /root gets the refusal below)
        assert printed.stdout == render_unit()


@NEEDS_SYSTEMD
def test_the_template_serves_one_account_per_instance(tmp_path: Path) -> None:
    unit = tmp_path / "mailroom@alice.service"  # an instance of mailroom@.service
    unit.write_text(render_unit(stub_command(tmp_path), UnitKind.TEMPLATE))
    text = unit.read_text()
    assert "EnvironmentFile=/etc/mailroom/%i.env" in text
    assert "LoadCredential=jmap-token:/etc/mailroom/%i.jmap-token" in text
    assert "StateDirectory=mailroom/%i\n" in text  # each account its own ledger
    assert verify(unit) == ""
    assert exposure(unit) < 2.0


@NEEDS_SYSTEMD
def test_the_user_unit_runs_without_root(tmp_path: Path) -> None:
    command = "/home/alice/.local/bin/mailroom"  # where `pipx install` puts it
    text = render_unit(command, UnitKind.USER)
    assert "DynamicUser" not in text and "WantedBy=default.target" in text
    assert "EnvironmentFile=-%h/.config/mailroom/mailroom.env" in text
    assert "StateDirectory=mailroom\n" in text  # ~/.local/state/mailroom
    unit = tmp_path / "mailroom.service"
    unit.write_text(text.replace(command, stub_command(tmp_path)))
    assert verify(unit, user=True) == ""


def test_a_system_unit_refuses_a_command_inside_a_home(tmp_path: Path) -> None:
    for command in ("/home/alice/.local/bin/mailroom", "/root/.local/bin/mailroom"):
        for kind in (UnitKind.SYSTEM, UnitKind.TEMPLATE):
            with pytest.raises(UnitError) as info:
                render_unit(command, kind)
            assert "sudo pipx install --global mailroom" in str(info.value)
            assert "mailroom systemd-unit --user" in str(info.value)
