"""``mailroom reset``: every decision taken back, the account as it was before."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from mailroom.commands.undo import run_reset
from mailroom.contacts.book import ContactsBackend
from mailroom.jmap.client import JmapClient
from mailroom.jmap.errors import JmapError
from mailroom.ledger.store import Ledger
from mailroom.settings import load_settings
from tests.conftest import Harness, put_contact
from tests.triage.test_pass_ledger import boxes, with_ledger

pytestmark = pytest.mark.anyio

LABELS = ["@ToImbox", "@ToFeed", "@ToPaperTrail", "@ToJail", "@ToPerson"]


async def reset(h: Harness, state: Path, *, apply: bool) -> tuple[int, str, str]:
    env = {
        **h.sandbox.env(h.backend.value),
        "MAILROOM_CONTACTS": h.backend.value,
        "MAILROOM_STATE_DIR": str(state),
    }
    out, err = io.StringIO(), io.StringIO()
    code = await run_reset(load_settings(env), apply=apply, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def account(h: Harness, senders: list[str], ids: list[str]) -> tuple[Any, ...]:
    """What a reset must bring back: every email's mailboxes, every sender's groups
    and whether it has a contact (labels aside: they are never put back)."""
    labels = {h.mail.mailbox_id(name) for name in LABELS}
    mail = {i: b - labels for i, b in boxes(h, ids).items()}
    groups = {s: frozenset(h.contacts.groups_of_address(s)) for s in senders}
    contacts = {s: h.contacts.contact_uid(s) is not None for s in senders}
    return mail, groups, contacts


@pytest.mark.slow
async def test_reset_after_50_decisions_returns_the_account_to_before(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    senders = [f"s{n}@corp{n % 7}.example" for n in range(40)]
    # Five senders the user had filed before Mailroom: their groups come back.
    for s in senders[:5]:
        await put_contact(h.book, s, "Known Person", "person", join=("Feed",))
    ids: list[str] = []
    first: list[str] = []
    for n, s in enumerate(senders):
        mine = [h.mail.deliver(s, name=f"Sender {n}") for _ in range(2)]
        ids += mine
        first.append(mine[0])
    before = account(h, senders, ids)
    triage, ledger = with_ledger(h, tmp_path / "mailroom.db")
    for n, email in enumerate(first):
        h.mail.set_mailboxes(email, {*h.mail.mailbox_names(email), LABELS[n % 4]})
    await triage.run_pass()
    # Ten change their minds: 50 decisions in all.
    for n, email in enumerate(first[:10]):
        h.mail.set_mailboxes(email, {*h.mail.mailbox_names(email), LABELS[(n + 1) % 4]})
    await triage.run_pass()
    assert len(ledger.history()) == 50
    assert account(h, senders, ids) != before

    code, out, _ = await reset(h, tmp_path, apply=False)
    assert code == 0 and "dry run: 40 senders would go back" in out
    code, out, err = await reset(h, tmp_path, apply=True)
    assert code == 0, err
    assert "done: 50 decisions taken back" in out
    assert account(h, senders, ids) == before
    assert "nothing to reset" in (await reset(h, tmp_path, apply=True))[1]  # idempotent
    undos = [d for d in Ledger.open(tmp_path / "mailroom.db")[0].history() if d.intent.undoes]
    assert len(undos) == 50


async def test_an_interrupted_reset_finishes_when_run_again(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    senders = [f"r{n}@acme.example" for n in range(6)]
    ids = [h.mail.deliver(s) for s in senders]
    before = account(h, senders, ids)
    triage, _ = with_ledger(h, tmp_path / "mailroom.db")
    for email in ids:
        h.mail.set_mailboxes(email, {"Screener", "@ToFeed"})
    await triage.run_pass()

    real = JmapClient.update_emails

    async def cut(self: JmapClient, *args: Any, **kwargs: Any) -> Any:
        raise JmapError("the link went down")

    monkeypatch.setattr(JmapClient, "update_emails", cut)
    code, _, err = await reset(h, tmp_path, apply=True)
    assert code == 1 and "the link went down" in err
    assert account(h, senders, ids) != before  # groups left, mail not yet back
    monkeypatch.setattr(JmapClient, "update_emails", real)
    code, out, err = await reset(h, tmp_path, apply=True)
    assert code == 0, err
    assert "done: 6 decisions taken back" in out
    assert account(h, senders, ids) == before


@pytest.mark.parametrize("senders", [1, 25])
async def test_a_reset_costs_the_same_requests_whatever_the_senders(
    harness: Harness, tmp_path: Path, senders: int
) -> None:
    h = harness
    triage, _ = with_ledger(h, tmp_path / "mailroom.db")
    for n in range(senders):
        ids = [h.mail.deliver(f"c{n}@count.example", name=f"C {n}") for _ in range(3)]
        h.mail.set_mailboxes(ids[0], {"Screener", "@ToFeed"})
    await triage.run_pass()
    before = h.sandbox.total_requests()
    code, _, err = await reset(h, tmp_path, apply=True)
    assert code == 0, err
    requests = h.sandbox.total_requests() - before
    if h.backend is ContactsBackend.JMAP:
        # session, address book, the groups with the mailboxes riding along,
        # the emails, the contacts, one ContactCard/set (groups left, contacts
        # deleted), the emails restored in two (added back and read back, then
        # the rest removed)
        assert requests == 8
    else:
        # CardDAV: discovery (4) and reads as a pass, one PUT for the group, and a
        # conditional DELETE per contact Mailroom made
        assert requests == 13 + senders
