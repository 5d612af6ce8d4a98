"""The people you write to skip the Screener (MAILROOM_TRUST_SENT), on the
stand-in with both contacts backends: the account and the ledger read after
each pass, and the requests it cost counted."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from mailroom.core.vocabulary import Trigger
from mailroom.correspondents.recipients import recipients, sent_filters, written_to
from mailroom.ledger.reading import Filter
from mailroom.ledger.store import Ledger
from mailroom.takeback.session import takeback_of
from mailroom.triage.workflow import Triage
from mailroom.wiring import Clients
from tests.conftest import Harness

pytestmark = pytest.mark.anyio


async def trusting(h: Harness, path: Path, category: str | None = "Imbox") -> tuple[Triage, Ledger]:
    ledger, _ = Ledger.open(path)
    triage = Triage(h.jmap, h.book, replace(h.triage.config, trust_sent=category), ledger=ledger)
    await triage.setup()
    return triage, ledger


def boxes_of(h: Harness, sender: str) -> set[str]:
    with h.mail.lock:
        ids = [e.id for e in h.mail.emails.values() if e.from_[0]["email"] == sender]
    return set().union(*(h.mail.mailbox_names(i) for i in ids))


def test_recipients_are_matched_exactly() -> None:
    emails: list[dict[str, Any]] = [
        {"to": [{"email": "JoAnn@x.com"}], "cc": None},
        {"to": [], "cc": [{"email": "bob@y.org"}], "bcc": [{"email": "eve@z.net"}, "junk"]},
    ]
    assert recipients(emails[1]) == {"bob@y.org", "eve@z.net"}
    # "ann@x.com" is inside "joann@x.com" as text, not as an address.
    assert written_to(emails, ["ann@x.com", "joann@x.com", "bob@y.org", "eve@z.net"]) == {
        "joann@x.com",
        "bob@y.org",
        "eve@z.net",
    }
    filters = sent_filters("sent", [f"s{n}@x.com" for n in range(70)])
    assert len(filters) == 3  # 33 senders (99 conditions) a filter at most
    assert all(f["conditions"][0] == {"inMailbox": "sent"} for f in filters)


async def test_a_reply_from_someone_you_wrote_to_is_trusted(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    me = h.sandbox.username
    h.mail.deliver(me, mailboxes=["Sent"], to=["pal@x.com"])
    h.mail.deliver(me, mailboxes=["Sent"], to=["team@y.org"], cc=["carbon@y.org"])
    h.mail.deliver(me, mailboxes=["Sent"], to=["team@y.org"], bcc=["blind@z.net"])
    replies = {s: h.mail.deliver(s) for s in ("pal@x.com", "carbon@y.org", "blind@z.net")}
    stranger = h.mail.deliver("joann@x.com")  # "pal@x.com" is no part of her address
    h.mail.deliver(me)  # a note to self: never a sender to trust
    triage, ledger = await trusting(h, tmp_path / "l.db")
    try:
        result = await triage.run_pass()
        assert sorted(s for s, _ in result.senders) == sorted(replies)
        for sender, eid in replies.items():
            assert h.mail.mailbox_names(eid) == {"Imbox", "Inbox"}
            assert h.contacts.groups_of_address(sender) == {"Imbox"}
        assert h.mail.mailbox_names(stranger) == {"Screener"}
        assert h.contacts.contact_uid(me) is None
        rows = ledger.history(Filter())
        assert {(d.intent.subject, d.intent.trigger, d.outcome.value) for d in rows} == {
            (s, "sent", "done") for s in replies
        }
    finally:
        ledger.close()


async def test_off_by_default_and_an_idle_pass_asks_nothing(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    h.mail.deliver(h.sandbox.username, mailboxes=["Sent"], to=["pal@x.com"])
    reply = h.mail.deliver("pal@x.com")
    off, ledger = await trusting(h, tmp_path / "off.db", category=None)
    await off.run_pass()
    ledger.close()
    assert h.mail.mailbox_names(reply) == {"Screener"}  # upgrading changes nothing by itself
    triage, ledger = await trusting(h, tmp_path / "on.db")
    try:
        await triage.run_pass()
        assert h.mail.mailbox_names(reply) == {"Imbox", "Inbox"}
        before = h.sandbox.total_requests("api")
        await triage.run_pass()  # nothing changed: the scan's one request, no more
        assert h.sandbox.total_requests("api") - before == 1
        # A hundred new senders waiting: who waits rides in the scan's request,
        # then one Sent query for all of them.
        for n in range(100):
            h.mail.deliver(f"new{n}@many.example")
        before = h.sandbox.total_requests("api")
        await triage.run_pass()
        assert h.sandbox.total_requests("api") - before == 2
        before = h.sandbox.total_requests("api")
        h.mail.deliver("new0@many.example")  # a change, but nobody new: no Sent query
        await triage.run_pass()
        assert h.sandbox.total_requests("api") - before == 1
    finally:
        ledger.close()


async def test_a_sender_taken_back_or_decided_is_never_overruled(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    me = h.sandbox.username
    for pal in ("pal@x.com", "mine@x.com"):
        h.mail.deliver(me, mailboxes=["Sent"], to=[pal])
    first = h.mail.deliver("pal@x.com")
    triage, ledger = await trusting(h, tmp_path / "l.db")
    try:
        # "mine" decided by the user (Jail) before trust was on: it stays in Jail.
        await triage.decide("mine@x.com", triage.config.categories.by_name("Jail"))
        mine = h.mail.deliver("mine@x.com")
        await triage.run_pass()
        assert h.mail.mailbox_names(first) == {"Imbox", "Inbox"}
        # The user takes the trusted decision back: pal goes back to the Screener …
        clients = cast(Clients, SimpleNamespace(jmap=h.jmap, book=h.book, triage=triage))
        session = await takeback_of(clients, ledger)
        (decision,) = [d for d in ledger.history(Filter("pal@x.com")) if d.intent.trigger == "sent"]
        plans = await session.takeback.plan([decision], ledger)
        await session.takeback.apply(plans, ledger, Trigger.CLI)
        assert boxes_of(h, "pal@x.com") == {"Screener"}
        # … and stays there, through new mail and new passes.
        h.mail.deliver("pal@x.com")
        fresh, ledger2 = await trusting(h, tmp_path / "l.db")  # a restart: nothing remembered
        await fresh.run_pass()
        assert boxes_of(h, "pal@x.com") == {"Screener"}
        # Never overruled: still Jail's (its new mail is left for the rules to file).
        assert h.mail.mailbox_names(mine) == {"Screener"}
        assert h.contacts.groups_of_address("mine@x.com") == {"Jail"}
        ledger2.close()
    finally:
        ledger.close()


async def test_a_trusted_decision_that_failed_is_tried_again(
    harness: Harness, tmp_path: Path
) -> None:
    """Refused once (the reply's email cannot be filed), the next pass tries
    again, though nothing changed in the account meanwhile."""
    h = harness
    h.mail.deliver(h.sandbox.username, mailboxes=["Sent"], to=["pal@x.com"])
    reply = h.mail.deliver("pal@x.com")
    h.mail.refuse_updates.add(reply)
    triage, ledger = await trusting(h, tmp_path / "l.db")
    try:
        await triage.run_pass()
        assert h.mail.mailbox_names(reply) == {"Screener"}
        assert not [d for d in ledger.history(Filter("pal@x.com")) if d.outcome.value == "done"]
        h.mail.refuse_updates.clear()
        await triage.run_pass()
        assert h.mail.mailbox_names(reply) == {"Imbox", "Inbox"}
        (done,) = [d for d in ledger.history(Filter("pal@x.com")) if d.outcome.value == "done"]
        assert done.intent.trigger == "sent"
    finally:
        ledger.close()
