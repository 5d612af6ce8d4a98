"""``mailroom undo``: a decision taken back exactly, on the stand-in, both backends."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from mailroom.carddav import vcard
from mailroom.commands.undo import run_undo
from mailroom.ledger.model import DecisionKind, Outcome
from mailroom.settings import load_settings
from tests.conftest import Harness, put_contact
from tests.triage.test_pass_ledger import boxes, with_ledger

pytestmark = pytest.mark.anyio


async def undo(h: Harness, state: Path, sender: str, *, apply: bool) -> str:
    env = {
        **h.sandbox.env(h.backend.value),
        "MAILROOM_CONTACTS": h.backend.value,
        "MAILROOM_STATE_DIR": str(state),
    }
    out, err = io.StringIO(), io.StringIO()
    code = await run_undo(load_settings(env), sender, apply=apply, out=out, err=err)
    assert code == 0, err.getvalue()
    return out.getvalue()


async def test_undo_puts_a_first_triage_back_in_the_screener(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "mailroom.db")
    ids = [h.mail.deliver("news@acme.example", name="News") for _ in range(3)]
    h.mail.set_mailboxes(ids[0], {"Screener", "@ToFeed"})
    before = boxes(h, ids)
    await triage.run_pass()
    assert h.contacts.groups_of_address("news@acme.example") == {"Feed"}
    triaged = boxes(h, ids)

    plan = await undo(h, tmp_path, "News@acme.example", apply=False)
    assert "undo: news@acme.example back from Feed to the Screener" in plan
    assert "  leave groups: Feed" in plan and "dry run: nothing changed" in plan
    assert boxes(h, ids) == triaged  # the dry run changed nothing

    done = await undo(h, tmp_path, "news@acme.example", apply=True)
    assert "done: news@acme.example is back in the Screener" in done
    label = h.mail.mailbox_id("@ToFeed")
    assert boxes(h, ids) == {i: b - {label} for i, b in before.items()}  # exactly as before
    assert h.contacts.groups_of_address("news@acme.example") == set()
    latest = ledger.history()[0]
    assert latest.intent.kind is DecisionKind.UNDO and latest.outcome is Outcome.DONE
    assert latest.intent.undoes == ledger.history()[1].id
    assert "nothing to undo for news@acme.example" in await undo(
        h, tmp_path, "news@acme.example", apply=False
    )


async def test_undo_of_a_re_triage_restores_the_category_before(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    triage, _ = with_ledger(h, tmp_path / "mailroom.db")
    ids = [h.mail.deliver("pat@acme.example") for _ in range(2)]
    h.mail.set_mailboxes(ids[0], {"Screener", "@ToFeed"})
    await triage.run_pass()
    in_feed = boxes(h, ids)
    h.mail.set_mailboxes(ids[0], {"Feed", "@ToImbox"})
    await triage.run_pass()
    assert h.contacts.groups_of_address("pat@acme.example") == {"Imbox"}
    out = await undo(h, tmp_path, "pat@acme.example", apply=True)
    assert "back from Imbox to Feed" in out
    assert h.contacts.groups_of_address("pat@acme.example") == {"Feed"}
    assert boxes(h, ids) == in_feed
    # Again: the first triage is taken back too, all the way to the Screener.
    await undo(h, tmp_path, "pat@acme.example", apply=True)
    assert h.contacts.groups_of_address("pat@acme.example") == set()
    assert all(h.mail.mailbox_names(i) == {"Screener"} for i in ids)


async def test_an_email_the_user_moved_since_is_left_alone(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    triage, _ = with_ledger(h, tmp_path / "mailroom.db")
    ids = [h.mail.deliver("mixed@acme.example") for _ in range(2)]
    h.mail.set_mailboxes(ids[0], {"Screener", "@ToPaperTrail"})
    await triage.run_pass()
    h.mail.set_mailboxes(ids[1], {"Archive"})  # the user filed it away
    out = await undo(h, tmp_path, "mixed@acme.example", apply=True)
    assert f"  email {ids[1]}: left alone (moved since)" in out
    assert h.mail.mailbox_names(ids[1]) == {"Archive"}
    assert h.mail.mailbox_names(ids[0]) == {"Screener"}


async def test_nothing_to_undo_without_a_ledger(harness: Harness, tmp_path: Path) -> None:
    out = await undo(harness, tmp_path / "none", "x@acme.example", apply=True)
    assert out.startswith("nothing to undo: no ledger at")
    assert not (tmp_path / "none").exists()


async def test_an_undo_never_makes_a_contact_the_user_deleted(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    triage, _ = with_ledger(h, tmp_path / "mailroom.db")
    email = h.mail.deliver("gone@acme.example")
    h.mail.set_mailboxes(email, {"Screener", "@ToJail"})
    await triage.run_pass()
    uid = h.contacts.contact_uid("gone@acme.example")
    assert uid is not None
    delete_contact(h, "gone@acme.example")  # the user deletes the contact
    assert h.contacts.contact_uid("gone@acme.example") is None
    await undo(h, tmp_path, "gone@acme.example", apply=True)
    assert h.contacts.contact_uid("gone@acme.example") is None
    assert h.mail.mailbox_names(email) == {"Screener"}


def delete_contact(h: Harness, address: str) -> None:
    store = h.contacts
    for name, card in store.parsed():
        if not vcard.is_group(card) and address in vcard.emails(card):
            with store.lock:
                del store.cards[name]


def edit_contact(h: Harness, address: str, line: str) -> None:
    """The user adds ``line`` (a vCard property) to the sender's contact."""
    store = h.contacts
    for name, card in store.parsed():
        if not vcard.is_group(card) and address in vcard.emails(card):
            with store.lock:
                old = store.cards[name]
                text = old.text.replace("END:VCARD", f"{line}\r\nEND:VCARD")
                store.cards[name] = dataclasses.replace(old, etag=old.etag + "x", text=text)


async def test_the_contact_mailroom_made_is_deleted_by_the_undo(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "mailroom.db")
    email = h.mail.deliver("Ann.Lee@acme.example", name="Ann Lee")
    h.mail.set_mailboxes(email, {"Screener", "@ToPerson"})
    await triage.run_pass()
    (made,) = ledger.history()
    assert made.effects.contact_created
    assert (made.effects.contact_name, made.effects.contact_kind) == ("Ann Lee", "person")
    plan = await undo(h, tmp_path, "ann.lee@acme.example", apply=False)
    assert "  delete the contact Mailroom made (nobody changed it since)" in plan
    assert h.contacts.contact_uid("ann.lee@acme.example") is not None  # dry
    done = await undo(h, tmp_path, "ann.lee@acme.example", apply=True)
    assert "  contact deleted" in done
    assert h.contacts.contact_uid("ann.lee@acme.example") is None
    assert h.mail.mailbox_names(email) == {"Screener"}
    assert ledger.history()[0].reason == "contact deleted"


async def test_a_contact_the_user_changed_since_stays(harness: Harness, tmp_path: Path) -> None:
    h = harness
    triage, _ = with_ledger(h, tmp_path / "mailroom.db")
    email = h.mail.deliver("bo@acme.example", name="Bo")
    h.mail.set_mailboxes(email, {"Screener", "@ToFeed"})
    await triage.run_pass()
    edit_contact(h, "bo@acme.example", "TEL:+1 555 0100")  # the user adds a phone
    out = await undo(h, tmp_path, "bo@acme.example", apply=True)
    assert "the contact Mailroom made stays: it was changed since Mailroom made it" in out
    assert "still skips the Screener" in out
    assert h.contacts.contact_uid("bo@acme.example") is not None
    assert h.contacts.groups_of_address("bo@acme.example") == set()


async def test_a_contact_the_user_had_before_stays(harness: Harness, tmp_path: Path) -> None:
    h = harness
    await put_contact(h.book, "cy@acme.example", "Cy", "person")
    triage, _ = with_ledger(h, tmp_path / "mailroom.db")
    email = h.mail.deliver("cy@acme.example", name="Cy")
    h.mail.set_mailboxes(email, {"Screener", "@ToFeed"})
    await triage.run_pass()
    out = await undo(h, tmp_path, "cy@acme.example", apply=True)
    assert "delete the contact" not in out and "contact deleted" not in out
    assert h.contacts.contact_uid("cy@acme.example") is not None
    assert h.contacts.groups_of_address("cy@acme.example") == set()


async def test_a_company_contact_mailroom_made_is_deleted_too(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    triage, _ = with_ledger(h, tmp_path / "mailroom.db")
    email = h.mail.deliver("billing@shop.example", name="Shop Billing")
    h.mail.set_mailboxes(email, {"Screener", "@ToPaperTrail"})
    await triage.run_pass()
    done = await undo(h, tmp_path, "billing@shop.example", apply=True)
    assert "  contact deleted" in done
    assert h.contacts.contact_uid("billing@shop.example") is None
