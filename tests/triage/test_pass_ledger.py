"""The pass writes the ledger: its intents before the account, what each
sender's triage did after; a ledger it cannot write stops it untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailroom.core.vocabulary import Trigger
from mailroom.ledger.model import DecisionKind, EmailMove, Intent, Outcome
from mailroom.ledger.sqlite_file import LedgerError
from mailroom.ledger.store import Ledger
from mailroom.triage import workflow
from mailroom.triage.bookkeeping import COMPLETED, PART_WAY, SUPERSEDED, UNSTARTED, Bookkeeper
from mailroom.triage.workflow import Triage
from tests.conftest import Harness

pytestmark = pytest.mark.anyio


def with_ledger(h: Harness, path: Path) -> tuple[Triage, Ledger]:
    ledger, _ = Ledger.open(path)
    triage = Triage(h.jmap, h.book, h.triage.config, ledger=ledger)
    triage._boxes, triage._own = h.triage._boxes, h.triage._own  # set up as h.triage is
    return triage, ledger


def boxes(h: Harness, ids: list[str]) -> dict[str, frozenset[str]]:
    with h.mail.lock:
        return {i: frozenset(h.mail.emails[i].mailbox_ids) for i in ids}


async def test_each_decision_is_recorded_exactly(harness: Harness, tmp_path: Path) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "l.db")
    ids = [h.mail.deliver("news@acme.example", name="Acme News") for _ in range(3)]
    h.mail.set_mailboxes(ids[0], {"Screener", "@ToFeed"})
    before = boxes(h, ids)
    result = await triage.run_pass(Trigger.PUSH)
    assert result.senders_triaged == 1
    after = boxes(h, ids)
    (decision,) = ledger.history()
    assert decision.outcome is Outcome.DONE
    assert (decision.intent.subject, decision.intent.category) == ("news@acme.example", "Feed")
    assert decision.intent.trigger == "push" and decision.intent.label_email == min(ids)
    effects = decision.effects
    assert effects.contact_created and effects.previous is None
    # The uid chosen when planned is the one the contact got.
    assert effects.contact_uid == h.contacts.contact_uid("news@acme.example")
    assert effects.joined == ("Feed",) and effects.left == ()
    # Every email, from exactly where it was to exactly where it is now.
    assert set(effects.moves) == {EmailMove(i, before[i], after[i]) for i in ids}


async def test_a_re_triage_records_the_category_it_left(harness: Harness, tmp_path: Path) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "l.db")
    first = h.mail.deliver("pat@acme.example")
    h.mail.set_mailboxes(first, {"Screener", "@ToFeed"})
    await triage.run_pass()
    h.mail.set_mailboxes(first, {"Feed", "@ToImbox"})
    await triage.run_pass()
    latest, earliest = ledger.history()
    assert earliest.intent.category == "Feed" and latest.intent.category == "Imbox"
    assert latest.effects.previous == "Feed"
    assert latest.effects.left == ("Feed",) and latest.effects.joined == ("Imbox",)
    assert not latest.effects.contact_created
    assert latest.effects.contact_uid == h.contacts.contact_uid("pat@acme.example")


async def test_an_unwritable_ledger_stops_the_pass_with_the_account_untouched(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "l.db")
    ids = [h.mail.deliver("held@acme.example") for _ in range(2)]
    h.mail.set_mailboxes(ids[0], {"Screener", "@ToFeed"})
    odd = h.mail.deliver("both@acme.example")  # a conflict: would get the error label
    h.mail.set_mailboxes(odd, {"Screener", "@ToFeed", "@ToImbox"})
    ledger._conn.execute("PRAGMA query_only = ON")  # as a read-only file is
    with pytest.raises(LedgerError, match=r"ledger .*l\.db: .*readonly.*writable"):
        await triage.run_pass()
    assert h.mail.mailbox_names(ids[0]) == {"Screener", "@ToFeed"}
    assert h.mail.mailbox_names(ids[1]) == {"Screener"}
    assert h.mail.mailbox_names(odd) == {"Screener", "@ToFeed", "@ToImbox"}  # not flagged
    assert h.contacts.contact_uid("held@acme.example") is None
    ledger._conn.execute("PRAGMA query_only = OFF")  # fixed: the next pass does it all
    await triage.run_pass()
    assert h.mail.mailbox_names(ids[0]) == {"Feed"}
    assert [d.outcome for d in ledger.history()] == [Outcome.DONE]


async def test_a_pass_killed_after_its_intents_is_completed_not_repeated(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    path = tmp_path / "l.db"
    triage, ledger = with_ledger(h, path)
    email = h.mail.deliver("again@acme.example")
    h.mail.set_mailboxes(email, {"Screener", "@ToPaperTrail"})
    h.contacts.refuse_addresses.add("again@acme.example")  # refused once its writes began
    await triage.run_pass()
    (stopped,) = ledger.history()
    # Its writes began: whatever landed stands (here: nothing but what undo finds).
    assert stopped.outcome is Outcome.PARTIAL and stopped.reason
    h.contacts.refuse_addresses.clear()
    await triage.run_pass()  # the label is still there: the same record is taken up
    (done,) = ledger.history()
    assert done.id == stopped.id and done.outcome is Outcome.DONE and done.reason is None
    # A pass that wrote its intents and was killed: the next pass takes that record.
    other = h.mail.deliver("killed@acme.example")
    h.mail.set_mailboxes(other, {"Screener", "@ToFeed"})
    (killed,) = ledger.begin([Intent("killed@acme.example", DecisionKind.TRIAGE, "Feed", "push")])
    await triage.run_pass()
    finished = ledger.decision(killed)
    assert finished is not None and finished.outcome is Outcome.DONE
    assert [d.id for d in ledger.history()] == [killed, stopped.id]
    assert ledger.pending() == []


async def test_a_dry_run_takes_no_ledger(harness: Harness, tmp_path: Path) -> None:
    ledger, _ = Ledger.open(tmp_path / "l.db")
    with pytest.raises(ValueError, match="dry run writes nothing"):
        Triage(harness.jmap, harness.book, harness.triage.config, dry_run=True, ledger=ledger)


class Killed(BaseException):
    """The process dying at that point (BaseException: nothing catches it)."""


async def crash_at(monkeypatch: pytest.MonkeyPatch, triage: Triage, where: str) -> None:
    """Run a pass that dies at ``where`` (a step of the workflow, or the outcomes)."""

    def die(*_: object, **__: object) -> None:
        raise Killed

    if where == "outcomes":
        monkeypatch.setattr(Bookkeeper, "outcomes", die)
    else:
        monkeypatch.setattr(workflow, where, die)
    with pytest.raises(Killed):
        await triage.run_pass()
    monkeypatch.undo()


async def test_a_pass_killed_after_unlabelling_is_completed_by_the_next(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "l.db")
    ids = [h.mail.deliver("late@acme.example") for _ in range(2)]
    h.mail.set_mailboxes(ids[0], {"Screener", "@ToImbox"})
    before = boxes(h, ids)
    await crash_at(monkeypatch, triage, "outcomes")  # the account done, the ledger not
    assert h.mail.mailbox_names(ids[0]) == {"Imbox", "Inbox"}
    (pending,) = ledger.pending()
    await triage.run_pass()  # nothing labelled: it checks the account and closes the record
    done = ledger.decision(pending.id)
    assert done is not None and done.outcome is Outcome.DONE and done.reason == COMPLETED
    assert set(done.effects.moves) == {EmailMove(i, before[i], boxes(h, ids)[i]) for i in ids}


async def test_a_crash_before_refiling_then_the_same_label_again_keeps_the_first_plan(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "l.db")
    ids = [h.mail.deliver("half@acme.example") for _ in range(3)]
    h.mail.set_mailboxes(ids[0], {"Screener", "@ToFeed"})
    before = boxes(h, ids)
    await crash_at(monkeypatch, triage, "unlabel")  # contact made, mail re-filed, label on
    assert h.mail.mailbox_names(ids[1]) == {"Feed"}
    await triage.run_pass()
    (decision,) = ledger.history()
    assert decision.outcome is Outcome.DONE and decision.reason is None
    # Where each email was before the first attempt, not where the crash left it.
    assert set(decision.effects.moves) == {EmailMove(i, before[i], boxes(h, ids)[i]) for i in ids}
    assert decision.effects.contact_created and decision.effects.joined == ("Feed",)


async def test_interrupted_decisions_whose_labels_went_are_closed_honestly(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "l.db")
    part = h.mail.deliver("part@acme.example")
    h.mail.set_mailboxes(part, {"Screener", "@ToFeed"})
    await crash_at(monkeypatch, triage, "refile")  # contact written, no mail moved yet
    h.mail.set_mailboxes(part, {"Screener"})  # the user takes the label off by hand
    gave_up = h.mail.deliver("never@acme.example")
    h.mail.set_mailboxes(gave_up, {"Screener", "@ToJail"})
    other = h.mail.deliver("moved@acme.example")
    h.mail.set_mailboxes(other, {"Screener", "@ToFeed"})
    await crash_at(monkeypatch, triage, "look_up")  # intents only, nothing written
    h.mail.set_mailboxes(gave_up, {"Screener"})
    h.mail.set_mailboxes(other, {"Screener", "@ToPaperTrail"})  # a change of mind
    late = h.mail.deliver("late@acme.example")
    h.mail.set_mailboxes(late, {"Screener", "@ToFeed"})
    await crash_at(monkeypatch, triage, "refile")  # late's contact written, then killed
    h.mail.set_mailboxes(late, {"Screener", "@ToImbox"})  # and relabelled
    await triage.run_pass()
    got = {(d.intent.subject, d.intent.category): d for d in ledger.history()}
    # Its writes began: what landed stands (undo and reset take it back).
    assert got["part@acme.example", "Feed"].reason == PART_WAY
    assert got["part@acme.example", "Feed"].outcome is Outcome.PARTIAL
    assert got["late@acme.example", "Feed"].reason == SUPERSEDED
    assert got["late@acme.example", "Feed"].outcome is Outcome.PARTIAL
    # Nothing was written: failed, nothing stands.
    assert got["never@acme.example", "Jail"].reason == UNSTARTED
    assert got["moved@acme.example", "Feed"].reason == UNSTARTED
    assert got["never@acme.example", "Jail"].outcome is Outcome.FAILED
    assert got["moved@acme.example", "Feed"].outcome is Outcome.FAILED
    assert got["moved@acme.example", "Paper Trail"].outcome is Outcome.DONE
    assert got["late@acme.example", "Imbox"].outcome is Outcome.DONE
    assert got["late@acme.example", "Imbox"].effects.previous == "Feed"
    assert ledger.pending() == []


async def test_a_sender_whose_category_is_broken_is_recorded_failed(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "l.db")
    email = h.mail.deliver("jailbird@acme.example")
    h.mail.set_mailboxes(email, {"Screener", "@ToJail"})
    with h.mail.lock:  # the user deletes the destination mailbox
        jail = h.mail.mailbox_id("Jail")
        del h.mail.mailboxes[jail]
        h.mail._bump(mailboxes=True)
    await triage.run_pass()
    (decision,) = ledger.history()
    assert decision.outcome is Outcome.FAILED
    assert decision.reason is not None and "mailbox 'Jail'" in decision.reason
    assert ledger.pending() == []


async def test_leaving_a_child_category_records_the_child(harness: Harness, tmp_path: Path) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "l.db")
    email = h.mail.deliver("friend@acme.example")
    h.mail.set_mailboxes(email, {"Screener", "@ToPerson"})
    await triage.run_pass()
    h.mail.set_mailboxes(email, {"Person", "Inbox", "@ToFeed"})
    await triage.run_pass()
    latest = ledger.history()[0]
    assert latest.effects.previous == "Person"  # not Imbox, its parent
    assert latest.effects.left == ("Imbox", "Person")
