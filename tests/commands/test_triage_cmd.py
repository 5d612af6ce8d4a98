"""``mailroom triage SENDER CATEGORY``: the pass's own steps, without a labelled email."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mailroom.commands.triage import run_triage
from mailroom.ledger.model import Outcome
from mailroom.ledger.store import Ledger
from mailroom.settings import load_settings
from tests.conftest import Harness

pytestmark = pytest.mark.anyio


async def triage_cmd(
    h: Harness, state: Path, sender: str, category: str, *, apply: bool
) -> tuple[int, str, str]:
    env = {
        **h.sandbox.env(h.backend.value),
        "MAILROOM_CONTACTS": h.backend.value,
        "MAILROOM_STATE_DIR": str(state),
    }
    out, err = io.StringIO(), io.StringIO()
    code = await run_triage(load_settings(env), sender, category, apply=apply, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def test_a_sender_decided_from_the_command_line(harness: Harness, tmp_path: Path) -> None:
    h = harness
    ids = [h.mail.deliver("cli@acme.example", name="Cli") for _ in range(3)]
    code, out, _ = await triage_cmd(h, tmp_path, "CLI@acme.example", "feed", apply=False)
    assert code == 0 and "would triage cli@acme.example into Feed" in out
    assert "  emails re-filed: 3" in out and "dry run: nothing changed" in out
    assert all(h.mail.mailbox_names(i) == {"Screener"} for i in ids)
    assert h.contacts.contact_uid("cli@acme.example") is None
    assert not (tmp_path / "mailroom.db").exists()  # a dry run writes nothing

    code, out, _ = await triage_cmd(h, tmp_path, "cli@acme.example", "@ToFeed", apply=True)
    assert code == 0 and "triaged cli@acme.example into Feed" in out
    assert all(h.mail.mailbox_names(i) == {"Feed"} for i in ids)
    assert h.contacts.groups_of_address("cli@acme.example") == {"Feed"}
    ledger, _ = Ledger.open(tmp_path / "mailroom.db")
    (decision,) = ledger.history()
    assert (decision.intent.trigger, decision.outcome) == ("cli", Outcome.DONE)
    assert {m.email for m in decision.effects.moves} == set(ids)


async def test_refusals(harness: Harness, tmp_path: Path) -> None:
    h = harness
    code, _, err = await triage_cmd(h, tmp_path, "a@acme.example", "Spam", apply=True)
    assert code == 2 and "no category 'Spam' (one of Imbox, Feed" in err
    code, _, err = await triage_cmd(h, tmp_path, "not-an-address", "Feed", apply=True)
    assert code == 2 and "is not an email address" in err
    own = h.sandbox.username  # the account's own address
    code, _, err = await triage_cmd(h, tmp_path, own, "Feed", apply=True)
    assert code == 1 and "this account's own address" in err
