"""@WholeList on the stand-in: a list decided by a label files every
email of the list waiting in the Screener, records it, and touches no contact."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailroom.ledger.reading import Filter
from mailroom.ledger.store import Ledger
from mailroom.triage.workflow import Triage
from tests.conftest import Harness

pytestmark = pytest.mark.anyio


async def test_a_list_decided_by_label_files_its_waiting_mail(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    users = [("List-Id", "Mailroom users <users.list.example>")]
    posts = [h.mail.deliver(s, headers=users) for s in ("a@x.com", "b@y.org", "c@z.net")]
    other = h.mail.deliver("a@x.com", headers=[("List-Id", "<other.list.example>")])
    alone = h.mail.deliver("a@x.com")
    h.mail.set_mailboxes(posts[0], {"Screener", "@ToFeed", "@WholeList"})
    ledger, _ = Ledger.open(tmp_path / "l.db")
    try:
        triage = Triage(h.jmap, h.book, h.triage.config, ledger=ledger)
        await triage.setup()
        await triage.run_pass()
        for eid in posts:
            assert h.mail.mailbox_names(eid) == {"Feed"}
        assert h.mail.mailbox_names(other) == {"Screener"}
        assert h.mail.mailbox_names(alone) == {"Screener"}
        assert h.contacts.groups_of_address("a@x.com") == set()  # no contact touched
        (decision,) = ledger.history(Filter())
        assert decision.intent.subject == "list:users.list.example"
        assert decision.outcome.value == "done" and len(decision.effects.moves) == 3
    finally:
        ledger.close()


async def test_a_list_decision_is_taken_back_exactly(harness: Harness, tmp_path: Path) -> None:
    from mailroom.lists.undo import undo_list

    h = harness
    users = [("List-Id", "<users.list.example>")]
    posts = [h.mail.deliver(s, headers=users) for s in ("a@x.com", "b@y.org")]
    h.mail.set_mailboxes(posts[0], {"Screener", "@ToImbox", "@WholeList"})
    ledger, _ = Ledger.open(tmp_path / "l.db")
    try:
        triage = Triage(h.jmap, h.book, h.triage.config, ledger=ledger)
        await triage.setup()
        await triage.run_pass()
        assert all(h.mail.mailbox_names(e) == {"Imbox", "Inbox"} for e in posts)
        h.mail.set_mailboxes(posts[1], {"Archive"})  # the user files one elsewhere
        (decision,) = ledger.history(Filter())
        back, left = await undo_list(h.jmap, triage.mailboxes, ledger, decision, "cli")
        assert (back, left) == (1, 1)
        assert h.mail.mailbox_names(posts[0]) == {"Screener"}  # the labels stay off
        assert h.mail.mailbox_names(posts[1]) == {"Archive"}
        undo = ledger.history(Filter())[0]
        assert undo.intent.kind.value == "undo" and undo.outcome.value == "done"
        await triage.run_pass()  # nothing asks for the list again
        assert h.mail.mailbox_names(posts[0]) == {"Screener"}
    finally:
        ledger.close()


async def test_a_later_post_is_filed_by_the_rule_and_undone_with_it(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    users = [("List-Id", "<users.list.example>")]
    first = h.mail.deliver("a@x.com", headers=users)
    h.mail.set_mailboxes(first, {"Screener", "@ToFeed", "@WholeList"})
    ledger, _ = Ledger.open(tmp_path / "l.db")
    try:
        triage = Triage(h.jmap, h.book, h.triage.config, ledger=ledger)
        await triage.setup()
        await triage.run_pass()
        before = h.sandbox.total_requests("api")
        await triage.run_pass()  # nothing new: the rules' one query finds nothing
        idle = h.sandbox.total_requests("api") - before
        later = h.mail.deliver("new@w.org", headers=[("List-Id", "Users <Users.List.Example>")])
        lookalike = h.mail.deliver("new@w.org", headers=[("List-Id", "<users.list.example.evil>")])
        await triage.run_pass()
        assert h.mail.mailbox_names(later) == {"Feed"}
        assert h.mail.mailbox_names(lookalike) == {"Screener"}  # text match, not the list
        rules = ledger.list_rules()
        assert list(rules) == ["users.list.example"]
        (filing,) = ledger.filed_by(rules["users.list.example"].id)
        assert filing.intent.rule == rules["users.list.example"].id
        assert idle == 2  # the scan and the rules' query
    finally:
        ledger.close()


async def test_a_list_filing_refused_part_way_is_finished_by_the_next_pass(
    harness: Harness, tmp_path: Path
) -> None:
    """One post refused: the decision stops part-way (what landed stands and is
    in its record), the label stays, and the next pass finishes the same record."""
    from mailroom.lists.undo import undo_list

    h = harness
    users = [("List-Id", "<users.list.example>")]
    posts = [h.mail.deliver(s, headers=users) for s in ("a@x.com", "b@y.org", "c@z.net")]
    h.mail.set_mailboxes(posts[0], {"Screener", "@ToFeed", "@WholeList"})
    h.mail.refuse_updates.add(posts[2])
    ledger, _ = Ledger.open(tmp_path / "l.db")
    try:
        triage = Triage(h.jmap, h.book, h.triage.config, ledger=ledger)
        await triage.setup()
        await triage.run_pass()
        (stopped,) = ledger.history(Filter())
        assert stopped.outcome.value == "partial", stopped.reason
        assert "1 email could not be filed" in (stopped.reason or "")
        assert h.mail.mailbox_names(posts[1]) == {"Feed"}
        assert h.mail.mailbox_names(posts[2]) == {"Screener"}
        assert "@WholeList" in h.mail.mailbox_names(posts[0])  # labels come off last
        h.mail.refuse_updates.clear()
        await triage.run_pass()
        (done,) = ledger.history(Filter())
        assert done.id == stopped.id and done.outcome.value == "done"
        assert all(h.mail.mailbox_names(e) == {"Feed"} for e in posts)
        assert {m.email for m in done.effects.moves} == set(posts)
        back, left = await undo_list(h.jmap, triage.mailboxes, ledger, done, "cli")
        assert (back, left) == (3, 0)
        assert all(h.mail.mailbox_names(e) == {"Screener"} for e in posts)
    finally:
        ledger.close()


async def test_a_list_rule_and_a_senders_own_decision_both_stand(
    harness: Harness, tmp_path: Path
) -> None:
    """The list's decision files its posts; the poster's own decision files the
    mail they send outside it and leaves their list posts to the list; each undo
    takes back its own part and nothing else, to exactly before."""
    from mailroom.lists.undo import undo_list
    from tests.takeback.test_undo import undo
    from tests.triage.test_pass_ledger import boxes, with_ledger

    h = harness
    users = [("List-Id", "<users.list.example>")]
    post = h.mail.deliver("ann@x.com", headers=users)
    other_post = h.mail.deliver("bo@y.org", headers=users)
    direct = h.mail.deliver("ann@x.com", name="Ann")
    everything = [post, other_post, direct]
    before = boxes(h, everything)
    triage, ledger = with_ledger(h, tmp_path / "mailroom.db")
    try:
        h.mail.set_mailboxes(other_post, {"Screener", "@ToFeed", "@WholeList"})
        await triage.run_pass()
        assert h.mail.mailbox_names(post) == {"Feed"}
        later = h.mail.deliver("ann@x.com", headers=users)  # Ann posts again
        h.mail.set_mailboxes(direct, {"Screener", "@ToImbox"})  # …and is decided herself
        await triage.run_pass()
        assert h.mail.mailbox_names(direct) == {"Imbox", "Inbox"}
        assert h.contacts.groups_of_address("ann@x.com") == {"Imbox"}
        # Inside the list the list's decision stands, the later post included.
        assert h.mail.mailbox_names(post) == {"Feed"}
        assert h.mail.mailbox_names(later) == {"Feed"}
        (ann,) = [d for d in ledger.history(Filter()) if d.intent.subject == "ann@x.com"]
        assert {m.email for m in ann.effects.moves} == {direct}

        await undo(h, tmp_path, "ann@x.com", apply=True)  # Ann's decision taken back
        assert h.contacts.groups_of_address("ann@x.com") == set()
        assert h.mail.mailbox_names(direct) == {"Screener"}
        assert h.mail.mailbox_names(post) == {"Feed"}  # still the list's
        rule = ledger.list_rules()["users.list.example"]
        for filing in [*ledger.filed_by(rule.id), rule]:
            await undo_list(h.jmap, triage.mailboxes, ledger, filing, "cli")
        label = h.mail.mailbox_id("@ToImbox")
        assert boxes(h, everything) == {i: b - {label} for i, b in before.items()}
        assert h.mail.mailbox_names(later) == {"Screener"}
    finally:
        ledger.close()
