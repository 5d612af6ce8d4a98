"""The running service and its ledger: /health names a ledger it cannot write,
a dry run writes none, a ledger it cannot open stops start-up."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from mailroom.commands.triage import run_triage
from mailroom.commands.undo import run_undo
from mailroom.ledger.store import Ledger
from mailroom.service import EXIT_CONFIG, App
from mailroom.settings import load_settings
from tests.faults import FaultySandbox
from tests.push.harness import running

pytestmark = pytest.mark.anyio


async def test_health_names_a_ledger_it_cannot_write_and_recovers(tmp_path: Path) -> None:
    with FaultySandbox() as sb:
        async with running(sb, env={"MAILROOM_STATE_DIR": str(tmp_path)}) as run:
            clients = run.app.clients
            assert clients is not None and clients.ledger is not None
            clients.ledger._conn.execute("PRAGMA query_only = ON")  # as a read-only file is
            ids = run.label("kept@x.example", emails=2)
            await run.until(lambda: run.polls("push", "failure") >= 1)
            status, body = await run.health()
            assert (status, body["status"]) == (503, "fail")
            assert "ledger cannot be written" in body["output"]
            assert str(tmp_path / "mailroom.db") in body["output"] and "writable" in body["output"]
            assert sb.mail.mailbox_names(ids[0]) == {"Screener", "@ToFeed"}  # kept
            clients.ledger._conn.execute("PRAGMA query_only = OFF")
            more = run.label("next@x.example")  # the next push: both are triaged
            await run.until(lambda: run.triaged(ids) and run.triaged(more))
            assert (await run.health())[1]["status"] == "pass"
        ledger, _ = Ledger.open(tmp_path / "mailroom.db")
        done = {d.intent.subject for d in ledger.history()}
        assert done == {"kept@x.example", "next@x.example"}


async def test_a_dry_run_writes_no_ledger(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with FaultySandbox() as sb:
        env = {"MAILROOM_STATE_DIR": str(state)}
        async with running(sb, env=env, dry_run=True) as run:
            ids = run.label("dry@x.example")
            await run.until(lambda: run.polls("push") >= 1)
            assert sb.mail.mailbox_names(ids[0]) == {"Screener", "@ToFeed"}
    assert not state.exists()


async def test_a_ledger_that_cannot_be_opened_stops_start_up(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with FaultySandbox() as sb:
        env = {**sb.env(), "MAILROOM_STATE_DIR": str(blocker), "MAILROOM_HTTP_PORT": "0"}
        code = await App(load_settings(env)).run(asyncio.Event())
    assert code == EXIT_CONFIG


async def test_a_corrupt_ledger_is_moved_aside_at_start(tmp_path: Path) -> None:
    (tmp_path / "mailroom.db").write_bytes(b"not a database at all" * 100)
    with FaultySandbox() as sb:
        async with running(sb, env={"MAILROOM_STATE_DIR": str(tmp_path)}) as run:
            ids = run.label("fresh@x.example")
            await run.until(lambda: run.triaged(ids))
    (aside,) = moved_aside(tmp_path)
    assert aside.read_bytes() == b"not a database at all" * 100


def moved_aside(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if ".corrupt-" in p.name]


async def test_the_status_page_remembers_triaged_senders_across_a_restart(
    tmp_path: Path,
) -> None:
    env = {"MAILROOM_STATE_DIR": str(tmp_path)}
    with FaultySandbox() as sb:
        async with running(sb, env=env) as run:
            ids = run.label("before@x.example")
            await run.until(lambda: run.triaged(ids))
        async with running(sb, env=env) as run:
            _, senders = run.app.telemetry.history.snapshot()
            assert [(s.sender, s.category) for s in senders] == [("before@x.example", "Feed")]
            host, port = run.app.server.address
            page = await run.http.get(f"http://{host}:{port}/")
            assert "before@x.example" in page.text


async def test_the_status_page_shows_undos_and_domain_rules_the_command_line_made(
    tmp_path: Path,
) -> None:
    env = {"MAILROOM_STATE_DIR": str(tmp_path)}
    with FaultySandbox() as sb:
        async with running(sb, env=env) as run:
            ids = run.label("gone@x.example")
            await run.until(lambda: run.triaged(ids))
            settings = load_settings({**sb.env(), **env})
            out, err = io.StringIO(), io.StringIO()
            assert await run_undo(settings, "gone@x.example", apply=True, out=out, err=err) == 0
            code = await run_triage(settings, "@acme.example", "Feed", apply=True, out=out, err=err)
            assert code == 0, err.getvalue()
            _, senders = run.app.telemetry.history.snapshot()
            assert [(s.sender, s.category, s.note) for s in senders] == [
                ("@acme.example", "Feed", "whole domain"),
                ("gone@x.example", "Screener", "undo"),
                ("gone@x.example", "Feed", ""),
            ]
            host, port = run.app.server.address
            page = (await run.http.get(f"http://{host}:{port}/")).text
            assert "Last decisions" in page and "(undo)" in page and "(whole domain)" in page
