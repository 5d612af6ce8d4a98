"""``@ToScreener`` from the phone: the sender all the way back, by the pass."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from mailroom.core.vocabulary import Trigger
from mailroom.ledger.model import DecisionKind, Outcome
from mailroom.triage.workflow import Triage
from tests.conftest import Harness
from tests.triage.test_pass_ledger import boxes, with_ledger

pytestmark = pytest.mark.anyio


async def test_the_label_takes_every_decision_back(harness: Harness, tmp_path: Path) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "mailroom.db")
    ids = [h.mail.deliver("vic@acme.example", name="Vic") for _ in range(3)]
    before = boxes(h, ids)
    h.mail.set_mailboxes(ids[0], {"Screener", "@ToFeed"})
    await triage.run_pass()
    h.mail.set_mailboxes(ids[1], {"Feed", "@ToJail"})  # a change of mind
    await triage.run_pass()
    assert h.contacts.groups_of_address("vic@acme.example") == {"Jail"}

    h.mail.set_mailboxes(ids[2], {"Jail", "@ToScreener"})  # from the phone
    label = h.mail.mailbox_id("@ToScreener")
    groups_when_off: list[set[str]] = []

    def watch(name: str, args: dict[str, Any]) -> None:
        """At the instant the label comes off, the sender must be all the way back."""
        for email, patch in (args.get("update") or {}).items():
            off = patch.get(f"mailboxIds/{label}", True) is None or (
                "mailboxIds" in patch and label not in patch["mailboxIds"]
            )
            if name == "Email/set" and email == ids[2] and off:
                groups_when_off.append(h.contacts.groups_of_address("vic@acme.example"))

    h.mail.before_method = watch
    result = await triage.run_pass(Trigger.PUSH)
    h.mail.before_method = None
    assert groups_when_off == [set()]  # off once, last

    assert (result.sent_back, result.failures) == (1, 0)
    assert boxes(h, ids) == before  # every email where it was, no label left
    assert h.contacts.contact_uid("vic@acme.example") is None  # Mailroom made it
    undos = [d for d in ledger.history() if d.intent.kind is DecisionKind.UNDO]
    assert [(d.intent.trigger, d.outcome) for d in undos] == [("push", Outcome.DONE)] * 2
    assert (await triage.run_pass()).sent_back == 0  # done once


async def test_a_sender_mailroom_never_decided_gets_the_error_label(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "mailroom.db")
    email = h.mail.deliver("new@acme.example")
    h.mail.set_mailboxes(email, {"Screener", "@ToScreener"})
    result = await triage.run_pass()
    assert result.sent_back == 0
    assert h.mail.mailbox_names(email) == {"Screener", "@ToScreener", "@MailroomError"}
    assert ledger.history() == []


async def test_with_a_triage_label_too_it_is_a_conflict(harness: Harness, tmp_path: Path) -> None:
    h = harness
    triage, _ = with_ledger(h, tmp_path / "mailroom.db")
    ids = [h.mail.deliver("two@acme.example") for _ in range(2)]
    h.mail.set_mailboxes(ids[0], {"Screener", "@ToFeed"})
    h.mail.set_mailboxes(ids[1], {"Screener", "@ToScreener"})
    result = await triage.run_pass()
    assert (result.conflicts, result.senders_triaged, result.sent_back) == (1, 0, 0)
    assert all("@MailroomError" in h.mail.mailbox_names(i) for i in ids)


async def test_a_dry_run_only_says_it(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    triage, _ = with_ledger(h, tmp_path / "mailroom.db")
    email = h.mail.deliver("dry@acme.example")
    h.mail.set_mailboxes(email, {"Screener", "@ToFeed"})
    await triage.run_pass()
    h.mail.set_mailboxes(email, {"Feed", "@ToScreener"})
    dry = Triage(h.jmap, h.book, triage.config, dry_run=True)
    await dry.setup()
    with caplog.at_level(logging.INFO):
        result = await dry.run_pass()
    assert result.sent_back == 0
    assert "dry run: would put sender back in the Screener" in caplog.text
    assert h.mail.mailbox_names(email) == {"Feed", "@ToScreener"}
    assert h.contacts.groups_of_address("dry@acme.example") == {"Feed"}


async def test_a_sender_already_back_just_loses_the_label(harness: Harness, tmp_path: Path) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "mailroom.db")
    email = h.mail.deliver("twice@acme.example")
    h.mail.set_mailboxes(email, {"Screener", "@ToFeed"})
    await triage.run_pass()
    h.mail.set_mailboxes(email, {"Feed", "@ToScreener"})
    await triage.run_pass()
    assert h.mail.mailbox_names(email) == {"Screener"}
    h.mail.set_mailboxes(email, {"Screener", "@ToScreener"})  # again: nothing stands
    result = await triage.run_pass()
    assert (result.sent_back, result.failures) == (1, 0)
    assert h.mail.mailbox_names(email) == {"Screener"}  # no error label
    assert len(ledger.history()) == 2


async def test_a_sender_sent_back_while_a_category_refuses_filing_comes_back_whole(
    harness: Harness, tmp_path: Path
) -> None:
    """Found by the soak: Imbox, then Paper Trail, then @ToScreener while Imbox
    refuses filing as Cyrus 3.6 does ("updated", nothing filed). Taking Paper
    Trail back puts the mail in the Inbox (allowed) but not in Imbox (refused):
    the read-back keeps Paper Trail, and the label stays. Once Imbox takes mail
    again, the next pass finishes: every email back in the Screener, and only
    then the label off (before, the half-done move was taken for the user's,
    left in the Inbox and Paper Trail, and the label came off)."""
    h = harness
    triage, _ = with_ledger(h, tmp_path / "mailroom.db")
    ids = [h.mail.deliver("ivy@acme.example") for _ in range(2)]
    before = boxes(h, ids)
    h.mail.set_mailboxes(ids[0], {"Screener", "@ToImbox"})
    await triage.run_pass()
    h.mail.set_mailboxes(ids[1], h.mail.mailbox_names(ids[1]) | {"@ToPaperTrail"})
    await triage.run_pass()
    assert h.mail.mailbox_names(ids[0]) == {"Paper Trail"}

    h.mail.no_insert[h.mail.mailbox_id("Imbox")] = "cyrus-3.6"
    h.mail.set_mailboxes(ids[0], {"Paper Trail", "@ToScreener"})
    result = await triage.run_pass()
    assert result.sent_back == 0 and result.failures == 1
    assert h.mail.mailbox_names(ids[0]) == {"Inbox", "Paper Trail", "@ToScreener"}

    del h.mail.no_insert[h.mail.mailbox_id("Imbox")]
    result = await triage.run_pass()
    assert (result.sent_back, result.failures) == (1, 0)
    assert boxes(h, ids) == before
    assert h.contacts.groups_of_address("ivy@acme.example") == set()
