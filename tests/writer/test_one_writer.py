"""One writer per account: the service's passes and the commands never interleave.

Each race is made exact rather than timed: the command is held at the moment
that matters (its contact written, its mail not yet moved) until the service's
pass has either run (the defect) or is seen waiting for the command (the fix).
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mailroom.commands.triage import run_triage
from mailroom.commands.undo import run_reset, run_undo
from mailroom.jmap.client import JmapClient
from mailroom.jmap.wire import SetOutcome
from mailroom.ledger.model import DecisionKind, Outcome
from mailroom.ledger.store import Ledger
from mailroom.settings import load_settings
from mailroom.takeback import reset as reset_rounds
from mailroom.writer.lock import Holder, WriterBusy, WriterLock
from tests.faults import FaultySandbox
from tests.push.harness import FAST, Running, running

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_the_lock_is_one_holder_at_a_time_and_names_it(tmp_path: Path) -> None:
    clock = Clock()
    first = WriterLock(tmp_path, clock=clock, sleep=clock.sleep)
    second = WriterLock(tmp_path, clock=clock, sleep=clock.sleep)
    assert first.try_acquire("mailroom reset") is None
    holder = second.try_acquire("the service's pass")
    assert holder is not None and holder.what == "mailroom reset" and holder.pid == os.getpid()
    heard: list[Holder | None] = []
    with pytest.raises(WriterBusy, match=r"mailroom reset \(pid \d+.*gave up after 5 s"):
        async with second.hold("the service's pass", wait=5.0, waiting=heard.append):
            pass
    assert [h.what if h else None for h in heard] == ["mailroom reset", None]
    assert clock.now >= 5.0  # waited on the injected clock, not the real one
    first.release()
    async with second.hold("the service's pass", wait=0.0):
        assert first.try_acquire("mailroom undo") is not None  # held now by the second
    assert first.try_acquire("mailroom undo") is None  # released at the end of the block
    first.release()
    assert (tmp_path / "writer.lock").stat().st_mode & 0o077 == 0


def env(sb: FaultySandbox, state: Path) -> dict[str, str]:
    return {**sb.env(), "MAILROOM_STATE_DIR": str(state)}


def held_at_mail_write(
    command: Callable[[], Coroutine[Any, Any, int]],
    meanwhile: Callable[[], None],
    run: Running,
) -> tuple[asyncio.Task[int], pytest.MonkeyPatch]:
    """Run ``command``; at its first re-filing (its contacts written, its mail not
    yet moved) call ``meanwhile`` (a user's label: a push pass) and hold the
    command until that pass has run, or is seen waiting for the command."""
    real = JmapClient.move_emails
    polls = run.polls("push") + run.polls("push", "failure")
    patch = pytest.MonkeyPatch()
    held: list[bool] = []

    async def move(self: JmapClient, patches: Mapping[str, Mapping[str, Any]]) -> SetOutcome:
        if asyncio.current_task() is task and not held:
            held.append(True)
            meanwhile()

            def passed_or_waits() -> bool:
                done = run.polls("push") + run.polls("push", "failure") > polls
                return done or run.app.telemetry.record.waiting_for is not None

            await run.until(passed_or_waits, within=20)
        return await real(self, patches)

    patch.setattr(JmapClient, "move_emails", move)
    task = asyncio.create_task(command())
    return task, patch


async def test_a_command_racing_the_service_is_never_overruled(tmp_path: Path) -> None:
    with FaultySandbox() as sb:
        async with running(sb, env={"MAILROOM_STATE_DIR": str(tmp_path)}) as run:
            sender = "cli@acme.example"
            ids = [sb.mail.deliver(sender) for _ in range(2)]
            other: list[str] = []
            out, err = io.StringIO(), io.StringIO()
            settings = load_settings(env(sb, tmp_path))

            async def command() -> int:
                return await run_triage(settings, sender, "Feed", apply=True, out=out, err=err)

            task, patch = held_at_mail_write(
                command, lambda: other.extend(run.label("pushed@acme.example")), run
            )
            try:
                code = await task
            finally:
                patch.undo()
            assert code == 0, err.getvalue()
            assert "triaged cli@acme.example into Feed" in out.getvalue()
            await run.until(lambda: run.triaged(other))  # the pass ran after the command
            assert run.triaged(ids)
            assert (await run.health())[1]["status"] == "pass"
        ledger, _ = Ledger.open(tmp_path / "mailroom.db")
        mine = ledger.history()[-1]
        assert (mine.intent.subject, mine.intent.trigger, mine.outcome) == (
            sender,
            "cli",
            Outcome.DONE,
        )
        out = io.StringIO()
        code = await run_undo(settings, sender, apply=False, out=out, err=io.StringIO())
        assert code == 0 and f"undo: {sender} back from Feed" in out.getvalue()


async def test_an_undo_racing_a_re_triage_leaves_the_account_whole(tmp_path: Path) -> None:
    with FaultySandbox() as sb:
        async with running(sb, env={"MAILROOM_STATE_DIR": str(tmp_path)}) as run:
            sender = "race@acme.example"
            ids = run.label(sender, emails=3)
            await run.until(lambda: run.triaged(ids))
            settings = load_settings(env(sb, tmp_path))
            out, err = io.StringIO(), io.StringIO()

            async def command() -> int:
                return await run_undo(settings, sender, apply=True, out=out, err=err)

            def relabel() -> None:  # the user files it to Paper Trail meanwhile
                sb.mail.set_mailboxes(ids[1], {"Feed", "@ToPaperTrail"})

            task, patch = held_at_mail_write(command, relabel, run)
            try:
                code = await task
            finally:
                patch.undo()
            assert code == 0, err.getvalue()
            await run.until(lambda: run.triaged(ids, "Paper Trail"))
            assert sb.contacts.groups_of_address(sender) == {"Paper Trail"}
            assert sb.contacts.contact_uid(sender) is not None
        ledger, _ = Ledger.open(tmp_path / "mailroom.db")
        trail = [(d.intent.kind, d.intent.category, d.outcome) for d in ledger.history()]
        assert trail == [
            (DecisionKind.TRIAGE, "Paper Trail", Outcome.DONE),
            (DecisionKind.UNDO, None, Outcome.DONE),
            (DecisionKind.TRIAGE, "Feed", Outcome.DONE),
        ]


async def test_reset_beside_the_service_with_a_rule_larger_than_a_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reset_rounds, "BATCH", 2)  # five senders: three rounds
    with FaultySandbox() as sb:
        async with running(sb, env={"MAILROOM_STATE_DIR": str(tmp_path)}) as run:
            senders = [f"s{n}@rule.example" for n in range(5)]
            mail = {s: sb.mail.deliver(s) for s in senders}
            settings = load_settings(env(sb, tmp_path))
            code = await run_triage(
                settings, "@rule.example", "Feed", apply=True, out=io.StringIO(), err=io.StringIO()
            )
            assert code == 0
            assert all(run.triaged([m]) for m in mail.values())
            real = JmapClient.move_emails
            rounds: list[int] = []
            out, err = io.StringIO(), io.StringIO()

            async def command() -> int:
                return await run_reset(settings, apply=True, out=out, err=err)

            task: asyncio.Task[int] | None = None

            async def move(
                self: JmapClient, patches: Mapping[str, Mapping[str, Any]]
            ) -> SetOutcome:
                if asyncio.current_task() is task:
                    # Between rounds, new mail from the domain: a push pass each time.
                    rounds.append(len(patches))
                    sb.mail.deliver(senders[len(rounds) % 5])
                    await run.until(lambda: run.app.telemetry.record.waiting_for is not None)
                return await real(self, patches)

            monkeypatch.setattr(JmapClient, "move_emails", move)
            task = asyncio.create_task(command())
            assert await task == 0, err.getvalue()
            monkeypatch.setattr(JmapClient, "move_emails", real)
            assert len(rounds) == 3
            assert "done: 6 decisions taken back" in out.getvalue()
            # The passes that waited ran after the reset: the rule is gone, nobody
            # is triaged again; every email waits in the Screener.
            await run.until(lambda: run.app.telemetry.record.waiting_for is None)
            await run.until(lambda: run.polls("push") >= 2)
            assert all(
                sb.mail.mailbox_names(e) == {"Screener"} for e in sb.mail.emails_in("Screener")
            )
            assert all(not sb.contacts.groups_of_address(s) for s in senders)
        ledger, _ = Ledger.open(tmp_path / "mailroom.db")
        kinds = [(d.intent.kind, d.outcome) for d in ledger.history()]
        assert len(kinds) == 12  # 5 senders + the rule, each triaged and undone once
        assert kinds.count((DecisionKind.UNDO, Outcome.DONE)) == 6


async def test_a_service_stopping_never_waits_for_a_command(tmp_path: Path) -> None:
    """SIGTERM while a pass waits for a command's lock: the pass has written
    nothing, so it gives up at once instead of holding the shutdown for up to
    half its deadline (here 300 s)."""
    command = WriterLock(tmp_path)
    with FaultySandbox() as sb:
        slow = replace(FAST, pass_timeout=600.0)
        async with running(sb, slow, env={"MAILROOM_STATE_DIR": str(tmp_path)}) as run:
            assert command.try_acquire("mailroom reset") is None
            ids = run.label("waits@acme.example")
            await run.until(lambda: run.app.telemetry.record.waiting_for is not None)
            # Leaving the block stops the service and allows it 10 s to exit.
        command.release()
        assert not run.triaged(ids)  # the pass never began: the label stays for the next


async def test_setup_creates_only_while_it_holds_the_writer_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailroom.commands.report import Report
    from mailroom.commands.setup import run_setup
    from mailroom.writer import commands as writing_module

    with FaultySandbox() as sb:
        settings = load_settings(env(sb, tmp_path))
        other = WriterLock(tmp_path)
        assert other.try_acquire("the service's pass") is None
        monkeypatch.setattr(writing_module, "COMMAND_WAIT", 0.0)
        out = io.StringIO()
        code = await run_setup(settings, apply=True, create_screener=True, report=Report(out))
        assert code == 1
        assert "the service's pass" in out.getvalue() and "created" not in out.getvalue()
        assert sb.contacts.groups_named("Imbox") == 0  # nothing made beside another writer
        other.release()
        out = io.StringIO()
        code = await run_setup(settings, apply=True, create_screener=True, report=Report(out))
        assert code == 0, out.getvalue()
        assert sb.contacts.groups_named("Imbox") == 1
