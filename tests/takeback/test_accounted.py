"""Every decision accounted for: what failed part-way, was refused or was cut off
still hands its effects to ``undo`` and ``reset``, and the account comes back exactly."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Literal

import pytest

from mailroom.commands.check import run_check
from mailroom.commands.report import Report
from mailroom.commands.status import run_status
from mailroom.commands.undo import run_reset, run_undo
from mailroom.core.vocabulary import Trigger
from mailroom.ledger.model import AccountKey, DecisionKind, Outcome
from mailroom.ledger.store import Ledger
from mailroom.settings import load_settings
from tests.conftest import Harness
from tests.faults import FaultySandbox
from tests.push.harness import running
from tests.takeback.test_reset import account, reset
from tests.triage.test_pass_ledger import boxes, crash_at, with_ledger

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["cyrus-3.6", "forbidden"])
async def test_a_refused_refile_never_loses_mail(
    harness: Harness, tmp_path: Path, mode: Literal["cyrus-3.6", "forbidden"]
) -> None:
    """Cyrus 3.6 says "updated" to a re-file into a mailbox the account may not
    file into, and drops the email from every mailbox: Mailroom never removes an
    email from a mailbox until the server shows it in the new one."""
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "mailroom.db")
    ids = [h.mail.deliver("lost@acme.example") for _ in range(3)]
    h.mail.set_mailboxes(ids[0], {"Screener", "@ToFeed"})
    h.mail.no_insert[h.mail.mailbox_id("Feed")] = mode
    result = await triage.run_pass()
    assert (result.senders_triaged, result.failures) == (0, 1)
    assert set(h.mail.emails) >= set(ids)  # none gone
    assert h.mail.mailbox_names(ids[0]) == {"Screener", "@ToFeed"}  # label kept: retried
    assert all(h.mail.mailbox_names(i) == {"Screener"} for i in ids[1:])
    (decision,) = ledger.history()
    assert decision.outcome is Outcome.PARTIAL and decision.reason
    assert "Feed" in decision.reason or h.mail.mailbox_id("Feed") in decision.reason
    del h.mail.no_insert[h.mail.mailbox_id("Feed")]  # the user fixes the rights
    again = await triage.run_pass()
    assert (again.senders_triaged, again.failures) == (1, 0)
    assert all(h.mail.mailbox_names(i) == {"Feed"} for i in ids)
    (done,) = ledger.history()  # the same decision, finished
    assert done.id == decision.id and done.outcome is Outcome.DONE


async def test_a_decision_refused_part_way_is_taken_back_by_reset(
    harness: Harness, tmp_path: Path
) -> None:
    """The contact is written, then one email's re-file is refused and the user
    gives up on the label: reset still deletes the contact and its group."""
    h = harness
    sender = "half@acme.example"
    ids = [h.mail.deliver(sender, name="Half Way") for _ in range(3)]
    before = account(h, [sender], ids)
    triage, ledger = with_ledger(h, tmp_path / "mailroom.db")
    h.mail.set_mailboxes(ids[0], {"Screener", "@ToFeed"})
    h.mail.refuse_updates.add(ids[2])
    await triage.run_pass()
    assert h.contacts.groups_of_address(sender) == {"Feed"}  # the contact write landed
    assert h.mail.mailbox_names(ids[2]) == {"Screener"}
    h.mail.set_mailboxes(ids[0], {"Feed"})  # the user takes the label off by hand
    h.mail.refuse_updates.clear()
    await triage.run_pass()
    (decision,) = ledger.history()
    assert decision.outcome is Outcome.PARTIAL
    code, out, err = await reset(h, tmp_path, apply=True)
    assert code == 0, err
    assert "done: 1 decision taken back" in out
    assert account(h, [sender], ids) == before
    assert h.contacts.contact_uid(sender) is None


async def test_to_screener_takes_back_a_decision_that_stopped_part_way(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    sender = "part@acme.example"
    ids = [h.mail.deliver(sender) for _ in range(2)]
    before = boxes(h, ids)
    triage, ledger = with_ledger(h, tmp_path / "mailroom.db")
    h.mail.set_mailboxes(ids[0], {"Screener", "@ToFeed"})
    h.mail.refuse_updates.add(ids[1])
    await triage.run_pass()
    h.mail.refuse_updates.clear()
    h.mail.set_mailboxes(ids[0], {"Feed", "@ToScreener"})  # changed their mind instead
    result = await triage.run_pass(Trigger.PUSH)
    assert (result.sent_back, result.failures) == (1, 0)
    assert h.contacts.groups_of_address(sender) == set()
    assert h.contacts.contact_uid(sender) is None
    assert boxes(h, ids) == before
    kinds = [(d.intent.kind, d.outcome) for d in ledger.history()]
    assert kinds == [(DecisionKind.UNDO, Outcome.DONE), (DecisionKind.TRIAGE, Outcome.PARTIAL)]


async def test_a_contact_planned_before_a_crash_is_made_under_its_planned_uid(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed between the plan and the contact write: the next pass makes the
    contact under the uid the ledger recorded, so undo knows it as Mailroom's."""
    h = harness
    sender = "crash@acme.example"
    ids = [h.mail.deliver(sender, name="Crash Test") for _ in range(2)]
    before = account(h, [sender], ids)
    triage, ledger = with_ledger(h, tmp_path / "mailroom.db")
    h.mail.set_mailboxes(ids[0], {"Screener", "@ToFeed"})
    await crash_at(monkeypatch, triage, "write_contacts")
    (pending,) = ledger.pending()
    planned = pending.effects.contact_uid
    assert planned is not None and h.contacts.contact_uid(sender) is None
    await triage.run_pass()  # the restarted service
    (done,) = ledger.history()
    assert done.id == pending.id and done.outcome is Outcome.DONE
    assert h.contacts.contact_uid(sender) == planned
    code, _, err = await reset(h, tmp_path, apply=True)
    assert code == 0, err
    assert account(h, [sender], ids) == before


@pytest.mark.parametrize(("first", "then"), [("@ToPerson", "@ToJail"), ("@ToJail", "@ToPerson")])
async def test_mailroom_s_own_fill_is_not_a_change_by_someone_else(
    harness: Harness, tmp_path: Path, first: str, then: str
) -> None:
    """A re-triage between a person and a company category fills the other kind's
    fields; the contact is still Mailroom's alone, deleted by reset."""
    h = harness
    sender = "kind@acme.example"
    ids = [h.mail.deliver(sender, name="Kim Kind") for _ in range(2)]
    before = account(h, [sender], ids)
    triage, _ = with_ledger(h, tmp_path / "mailroom.db")
    h.mail.set_mailboxes(ids[0], {"Screener", first})
    await triage.run_pass()
    h.mail.set_mailboxes(ids[1], {*h.mail.mailbox_names(ids[1]), then})
    await triage.run_pass()
    code, out, err = await reset(h, tmp_path, apply=True)
    assert code == 0, err
    assert "contact kept" not in out
    assert account(h, [sender], ids) == before
    assert h.contacts.contact_uid(sender) is None


async def test_a_ledger_of_another_account_refuses_and_writes_nothing(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    sender = "mine@acme.example"
    ids = [h.mail.deliver(sender)]
    triage, ledger = with_ledger(h, tmp_path / "mailroom.db")
    h.mail.set_mailboxes(ids[0], {"Screener", "@ToFeed"})
    await triage.run_pass()
    other = AccountKey("https://jmap.example.net", "someone-else", "u999")
    ledger.bind(other)  # a ledger first used with another account
    rows = len(ledger.history())
    after_triage = account(h, [sender], ids)
    env = {
        **h.sandbox.env(h.backend.value),
        "MAILROOM_CONTACTS": h.backend.value,
        "MAILROOM_STATE_DIR": str(tmp_path),
    }
    for command in ("reset", "undo"):
        out, err = io.StringIO(), io.StringIO()
        if command == "reset":
            code = await run_reset(load_settings(env), apply=True, out=out, err=err)
        else:
            code = await run_undo(load_settings(env), sender, apply=True, out=out, err=err)
        assert code != 0
        text = err.getvalue()
        assert "someone-else" in text and "MAILROOM_STATE_DIR" in text, text
        assert h.sandbox.username in text
    assert account(h, [sender], ids) == after_triage
    assert len(Ledger.open(tmp_path / "mailroom.db")[0].history()) == rows


def drop_mailbox(sb: FaultySandbox, name: str) -> None:
    with sb.mail.lock:
        del sb.mail.mailboxes[sb.mail.mailbox_id(name)]
        sb.mail._bump(mailboxes=True)


async def test_an_account_set_up_before_the_optional_labels_stays_green(tmp_path: Path) -> None:
    """Set up by an older Mailroom (no @ToScreener, no @WholeDomain): it triages,
    /health passes with a note per feature that is off, and `status` and `check`
    say so in a line without failing."""
    with FaultySandbox() as sb:
        async with running(sb, env={"MAILROOM_STATE_DIR": str(tmp_path)}) as run:
            for name in ("@ToScreener", "@WholeDomain"):
                drop_mailbox(sb, name)
            ids = run.label("old@acme.example", emails=2)
            await run.until(lambda: run.triaged(ids))
            await run.until(lambda: bool(run.app.telemetry.record.off))
            status, body = await run.health()
            assert (status, body["status"], body["output"]) == (200, "pass", None)
            notes = " ".join(body["notes"])
            assert "'@ToScreener'" in notes and "'@WholeDomain'" in notes
            assert "mailroom setup --apply" in notes
            host, port = run.app.server.address
            out = io.StringIO()
            code = await asyncio.to_thread(run_status, f"http://{host}:{port}", out)
            assert code == 0 and "note:" in out.getvalue() and "@ToScreener" in out.getvalue()
        out = io.StringIO()
        code = await run_check(load_settings(sb.env()), Report(out))
        text = out.getvalue()
        assert code == 0, text
        assert "! mailbox '@ToScreener' (the back-to-Screener label) is missing" in text
        assert "✗" not in text
