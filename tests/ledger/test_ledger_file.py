"""The ledger file where things go wrong around it: permissions, a file deleted
while in use, two processes creating it, a lock at start, a pruned decision's
undo, IDNA, and commands run from a shell beside the system service."""

from __future__ import annotations

import asyncio
import io
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from mailroom.commands import triage as decide
from mailroom.commands.undo import nothing_to_undo, run_undo, subject_problem
from mailroom.domains.names import normal, refusal
from mailroom.ledger import schema
from mailroom.ledger.location import elsewhere_hint
from mailroom.ledger.model import AccountKey, DecisionKind, Intent
from mailroom.ledger.sqlite_file import LedgerError
from mailroom.ledger.store import Ledger
from mailroom.service import App
from mailroom.settings import load_settings
from tests.conftest import Harness
from tests.faults import FaultySandbox
from tests.push.harness import FAST, running
from tests.triage.test_pass_ledger import with_ledger

pytestmark = pytest.mark.anyio


def test_the_ledger_and_its_journals_are_the_user_s_alone(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a shell's usual umask: files 0644
    try:
        ledger, _ = Ledger.open(tmp_path / "state" / "mailroom.db")
        ledger.begin([Intent("a@x.example", DecisionKind.TRIAGE, "Feed", "push")])
    finally:
        os.umask(old)
    for name in ("mailroom.db", "mailroom.db-wal", "mailroom.db-shm"):
        assert (tmp_path / "state" / name).stat().st_mode & 0o077 == 0, name
    assert (tmp_path / "state").stat().st_mode & 0o077 == 0
    # One a looser umask made earlier is tightened when opened.
    loose = tmp_path / "loose.db"
    loose.touch(mode=0o644)
    loose.chmod(0o644)
    Ledger.open(loose)
    assert loose.stat().st_mode & 0o077 == 0


def test_each_commit_is_synced_to_disk(tmp_path: Path) -> None:
    ledger, _ = Ledger.open(tmp_path / "mailroom.db")
    assert ledger._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_ledger_deleted_while_in_use_is_followed_to_its_path(tmp_path: Path) -> None:
    path = tmp_path / "mailroom.db"
    ledger, _ = Ledger.open(path)
    key = AccountKey("https://api.example.com", "me", "u1")
    ledger.bind(key)
    ledger.begin([Intent("old@x.example", DecisionKind.TRIAGE, "Feed", "push")])
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    ledger.begin([Intent("new@x.example", DecisionKind.TRIAGE, "Feed", "push")])
    other, _ = Ledger.open(path)  # a command opening it now sees the service's writes
    assert [d.intent.subject for d in other.history()] == ["new@x.example"]
    assert other.account() == key  # bound again to the same account


def test_two_processes_creating_the_ledger_at_once_both_open_it(tmp_path: Path) -> None:
    path = tmp_path / "mailroom.db"
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def open_it() -> None:
        start.wait()
        try:
            Ledger.open(path)[0].close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conn = sqlite3.connect(path)
    assert schema.version(conn) == schema.VERSION


async def test_start_up_waits_out_a_locked_ledger(tmp_path: Path) -> None:
    """Another process holding the ledger's write lock at start: the service waits
    (/health says why) instead of exiting 2, which systemd would never restart."""
    path = tmp_path / "mailroom.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    for step in schema.MIGRATIONS[:2]:  # a ledger of the schema before: to be migrated
        holder.executescript(step)
    holder.execute("PRAGMA user_version = 2")
    holder.execute("BEGIN IMMEDIATE")  # another process writing it (a command, a backup)
    with FaultySandbox() as sb:
        env = {**sb.env(), "MAILROOM_STATE_DIR": str(tmp_path), "MAILROOM_HTTP_PORT": "0"}
        settings = load_settings(env)
        sb.mail.ensure_mailbox("Screener")
        sb.prepare(settings.categories)
        monkey = pytest.MonkeyPatch()
        monkey.setattr("mailroom.ledger.sqlite_file.BUSY_TIMEOUT_S", 0.05)
        monkey.setattr("mailroom.ledger.store.BUSY_TIMEOUT_S", 0.05)
        app = App(settings, policy=FAST)
        stop = asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        try:
            for _ in range(500):
                if app.telemetry.record.starting and "ledger" in app.telemetry.record.starting:
                    break
                await asyncio.sleep(0.01)
            assert "locked" in str(app.telemetry.record.starting)
            assert not task.done()
            holder.execute("ROLLBACK")
            for _ in range(1000):
                if app.telemetry.record.last_poll_success_at is not None:
                    break
                await asyncio.sleep(0.01)
            assert app.telemetry.record.last_poll_success_at is not None
        finally:
            monkey.undo()
            stop.set()
            assert await asyncio.wait_for(task, 10) == 0


async def test_an_undo_past_retention_says_the_emails_stay(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "mailroom.db")
    email = h.mail.deliver("old@acme.example")
    h.mail.set_mailboxes(email, {"Screener", "@ToFeed"})
    await triage.run_pass()
    assert ledger.prune(older_than=1e12) == 1
    env = {
        **h.sandbox.env(h.backend.value),
        "MAILROOM_CONTACTS": h.backend.value,
        "MAILROOM_STATE_DIR": str(tmp_path),
    }
    out, err = io.StringIO(), io.StringIO()
    code = await run_undo(load_settings(env), "old@acme.example", apply=True, out=out, err=err)
    assert code == 0, err.getvalue()
    assert "back in the Screener" not in out.getvalue()
    assert "its emails stay where they are" in out.getvalue()
    assert "MAILROOM_LEDGER_RETENTION_DAYS" in out.getvalue()
    assert h.mail.mailbox_names(email) == {"Feed"}
    assert h.contacts.groups_of_address("old@acme.example") == set()


def test_domains_are_idna_2008() -> None:
    assert normal("faß.de") == "xn--fa-hia.de"  # not fass.de, another domain
    assert normal("@Bücher.DE.") == "xn--bcher-kva.de"
    assert normal("ACME.example") == "acme.example"
    assert refusal(normal("faß.de")) is None


def test_undo_checks_its_subject_and_the_ledger_before_any_token(tmp_path: Path) -> None:
    assert subject_problem("bob@acme.example") is None
    assert subject_problem("@acme.example") is None
    for bad in ("bob", "bob @acme.example", "@", "@not a domain", "@1.2.3.4"):
        assert subject_problem(bad) is not None, bad
    path = tmp_path / "mailroom.db"
    assert "no ledger at" in str(nothing_to_undo(path, "bob@acme.example"))
    ledger, _ = Ledger.open(path)
    assert nothing_to_undo(path, "bob@acme.example") == "nothing to undo for bob@acme.example"
    (i,) = ledger.begin([Intent("bob@acme.example", DecisionKind.TRIAGE, "Feed", "cli")])
    ledger.finish([i])
    assert nothing_to_undo(path, "BOB@acme.example") is None  # something to undo: go on


def test_a_shell_command_is_pointed_at_the_system_service_s_ledger(tmp_path: Path) -> None:
    system = tmp_path / "var-lib-mailroom"
    (system / "work").mkdir(parents=True)
    (system / "work" / "mailroom.db").touch()  # a template instance's
    shell = {"HOME": str(tmp_path / "home")}
    hint = elsewhere_hint(shell, system)
    assert hint is not None and f"MAILROOM_STATE_DIR={system / 'work'}" in hint
    assert elsewhere_hint({**shell, "MAILROOM_STATE_DIR": str(tmp_path)}, system) is None
    mine = tmp_path / "home" / ".local" / "state" / "mailroom"
    mine.mkdir(parents=True)
    (mine / "mailroom.db").touch()
    assert elsewhere_hint(shell, system) is None  # the shell has a ledger of its own


async def test_a_service_against_another_account_s_ledger_stops(tmp_path: Path) -> None:
    ledger, _ = Ledger.open(tmp_path / "mailroom.db")
    ledger.bind(AccountKey("https://jmap.elsewhere.example", "them", "u2"))
    ledger.close()
    with FaultySandbox() as sb:
        env = {**sb.env(), "MAILROOM_STATE_DIR": str(tmp_path), "MAILROOM_HTTP_PORT": "0"}
        sb.mail.ensure_mailbox("Screener")
        code = await App(load_settings(env)).run(asyncio.Event())
    assert code == 2


async def test_the_service_s_own_ledger_binds_on_first_start(tmp_path: Path) -> None:
    with FaultySandbox() as sb:
        async with running(sb, env={"MAILROOM_STATE_DIR": str(tmp_path)}) as run:
            ids = run.label("first@acme.example")
            await run.until(lambda: run.triaged(ids))
        ledger, _ = Ledger.open(tmp_path / "mailroom.db")
        key = ledger.account()
        assert key is not None and key.username == sb.username
        with pytest.raises(LedgerError):
            ledger.bind(AccountKey(key.origin, "someone-else", key.account_id))


async def test_triage_from_a_shell_never_starts_a_second_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The system service records the account in /var/lib/mailroom; a shell whose
    own ledger is missing must not start another (a second writer)."""
    system = tmp_path / "var-lib-mailroom"
    system.mkdir()
    (system / "mailroom.db").touch()
    monkeypatch.setattr("mailroom.ledger.location.SYSTEM_STATE", system)
    home = tmp_path / "home"
    for key in ("MAILROOM_STATE_DIR", "STATE_DIRECTORY", "XDG_STATE_HOME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(home))
    with FaultySandbox() as sb:
        env = {k: v for k, v in sb.env().items() if k != "MAILROOM_STATE_DIR"}
        settings = load_settings({**env, "HOME": str(home)})
        out, err = io.StringIO(), io.StringIO()
        code = await decide.run_triage(
            settings, "x@acme.example", "Feed", apply=True, out=out, err=err
        )
    assert code == 2
    assert f"MAILROOM_STATE_DIR={system}" in err.getvalue()
    assert not (home / ".local" / "state" / "mailroom" / "mailroom.db").exists()
