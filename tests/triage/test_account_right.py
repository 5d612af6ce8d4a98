"""The account stays right whatever it holds: each defect a review found, on both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mailroom.account.categories import DEFAULT_CATEGORIES_JSON, parse_categories
from mailroom.account.review import review_account
from mailroom.carddav import vcard
from mailroom.contacts.book import ContactsBackend
from tests.conftest import Harness
from tests.triage.test_workflow import label

pytestmark = pytest.mark.anyio


def setup_apply(h: Harness) -> subprocess.CompletedProcess[str]:
    """`mailroom setup --apply` as the user runs it: another process, same server."""
    contacts = "jmap" if h.backend is ContactsBackend.JMAP else "carddav"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MAILROOM_")},
        **h.sandbox.env(contacts=contacts),
    }
    return subprocess.run(
        [sys.executable, "-m", "mailroom", "setup", "--apply"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_a_group_deleted_then_recreated_by_setup_is_picked_up(harness: Harness) -> None:
    h = harness
    jail = next(n for n, c in h.contacts.cards.items() if "FN:Jail" in c.text)
    del h.contacts.cards[jail]
    eid = h.mail.deliver("j@x.com")
    label(h, eid, "@ToJail")
    for _ in range(2):  # the category fails, pass after pass
        failed = await h.triage.run_pass()
        assert failed.missing == {"contact group 'Jail'"}
        assert h.mail.mailbox_names(eid) == {"Screener", "@ToJail"}

    done = setup_apply(h)  # as /health told the user to
    assert done.returncode == 0, done.stdout + done.stderr
    assert "created contact group 'Jail'" in done.stdout

    result = await h.triage.run_pass()
    assert (result.senders_triaged, result.missing) == (1, set())
    assert h.contacts.groups_of_address("j@x.com") == {"Jail"}
    assert h.mail.mailbox_names(eid) == {"Jail"}


def twin_card(uid: str, address: str) -> str:
    return (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:Twin {uid}\r\nN:Twin;{uid};;;\r\n"
        f"EMAIL;TYPE=INTERNET:{address}\r\nEND:VCARD\r\n"
    )


async def test_every_contact_with_the_address_moves(harness: Harness) -> None:
    h = harness
    # An import left two contacts for one sender, one of them already in Feed.
    for uid in ("twin-a", "twin-b"):
        h.contacts.write(f"{uid}.vcf", twin_card(uid, "dup@x.com"))
    feed = next(n for n, c in h.contacts.cards.items() if "FN:Feed" in c.text)
    h.contacts.write(feed, vcard.with_member(h.contacts.dav_text(feed), "twin-b") or "")
    eid = h.mail.deliver("dup@x.com")
    label(h, eid, "@ToJail")

    result = await h.triage.run_pass()

    assert (result.senders_triaged, result.failures) == (1, 0)
    for uid in ("twin-a", "twin-b"):
        groups = {
            vcard.display_name(c)
            for _, c in h.contacts.parsed()
            if vcard.is_group(c) and uid in vcard.members(c)
        }
        assert groups == {"Jail"}, uid


async def test_one_contact_with_two_addresses_in_two_categories_is_a_conflict(
    harness: Harness,
) -> None:
    h = harness
    h.contacts.write(
        "both.vcf",
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:both\r\nFN:Both\r\nN:;;;;\r\n"
        "EMAIL:work@x.com\r\nEMAIL:home@x.com\r\nEND:VCARD\r\n",
    )
    work, home = h.mail.deliver("work@x.com"), h.mail.deliver("home@x.com")
    label(h, work, "@ToFeed")
    label(h, home, "@ToJail")

    result = await h.triage.run_pass()

    assert (result.conflicts, result.senders_triaged) == (2, 0)
    assert h.contacts.groups_of_address("work@x.com") == set()
    assert h.mail.mailbox_names(work) == {"Screener", "@ToFeed", "@MailroomError"}
    assert h.mail.mailbox_names(home) == {"Screener", "@ToJail", "@MailroomError"}


async def test_a_refused_join_never_leaves_the_contact_in_no_group(harness: Harness) -> None:
    h = harness
    first, second = h.mail.deliver("mover@x.com"), h.mail.deliver("mover@x.com")
    label(h, first, "@ToFeed")
    await h.triage.run_pass()
    assert h.contacts.groups_of_address("mover@x.com") == {"Feed"}

    h.contacts.refuse_groups.add("Jail")  # the server refuses the new group's write
    label(h, second, "@ToJail")
    result = await h.triage.run_pass()

    assert result.failures == 1
    assert h.contacts.groups_of_address("mover@x.com") == {"Feed"}  # still routed
    assert "@ToJail" in h.mail.mailbox_names(second)  # retried next pass
    h.contacts.refuse_groups.clear()
    again = await h.triage.run_pass()
    assert (again.senders_triaged, again.failures) == (1, 0)
    assert h.contacts.groups_of_address("mover@x.com") == {"Jail"}


async def test_the_users_own_mail_is_never_triaged_or_refiled(harness: Harness) -> None:
    h = harness
    me = h.sandbox.username
    h.sandbox.identities.append("alias@sandbox.test")
    # An alias the server names in no identity, only in the From of Sent mail.
    h.mail.deliver("old-alias@sandbox.test", mailboxes=["Sent"], to=["friend@x.com"])
    old_alias_mail = h.mail.deliver("old-alias@sandbox.test")
    # What the user sent is from them, to the friend.
    sent = [h.mail.deliver(me, mailboxes=["Sent"], to=["friend@x.com"]) for _ in range(2)]
    draft = h.mail.deliver("friend@x.com", mailboxes=["Drafts"])
    test_mail = h.mail.deliver(me)  # the new user's test mail, in the Screener
    alias_mail = h.mail.deliver("alias@sandbox.test")
    await h.triage.setup()  # identities are read at start-up
    friend = h.mail.deliver("friend@x.com")
    for eid in (test_mail, alias_mail, old_alias_mail):
        label(h, eid, "@ToImbox")
    label(h, friend, "@ToImbox")

    result = await h.triage.run_pass()

    assert result.senders == [("friend@x.com", "Imbox")]
    for eid in (test_mail, alias_mail, old_alias_mail):
        assert h.mail.mailbox_names(eid) == {"Screener", "@ToImbox", "@MailroomError"}
    assert h.contacts.contact_uid(me) is None  # the user never joins a group
    for eid in sent:
        assert h.mail.mailbox_names(eid) == {"Sent"}  # Sent untouched
    assert h.mail.mailbox_names(draft) == {"Drafts"}


async def test_an_email_with_several_from_addresses_gets_the_error_label(
    harness: Harness,
) -> None:
    h = harness
    eid = h.mail.deliver("first@x.com")
    h.mail.emails[eid].from_.append({"name": "", "email": "second@x.com"})
    label(h, eid, "@ToFeed")
    result = await h.triage.run_pass()
    assert result.senders_triaged == 0
    assert h.mail.mailbox_names(eid) == {"Screener", "@ToFeed", "@MailroomError"}
    assert h.contacts.contact_uid("first@x.com") is None


async def test_a_broken_card_blocks_only_its_own_address(dav_harness: Harness) -> None:
    h = dav_harness
    h.contacts.write("broken.vcf", "BEGIN:VCARD\r\nEMAIL:jimbob@x.com\r\nthis is not a vcard")
    for sender in ("jimbob@x.com", "bob@x.com"):
        label(h, h.mail.deliver(sender), "@ToFeed")
    result = await h.triage.run_pass()
    assert result.senders == [("bob@x.com", "Feed")]
    assert result.failures == 1  # jimbob: its card must be fixed first


@pytest.mark.parametrize(
    ("setting", "role"),
    [("destination", "trash"), ("destination", "sent"), ("screener", "inbox")],
)
def test_a_role_mailbox_as_destination_or_screener_is_refused(setting: str, role: str) -> None:
    name = {"trash": "Trash", "sent": "Sent", "inbox": "Inbox"}[role]
    categories = json.loads(DEFAULT_CATEGORIES_JSON)
    screener = "Screener"
    if setting == "destination":
        categories[1] = {"name": "Feed", "destination": name}
    else:
        screener = "Posteingang"
        name = screener
    cats = parse_categories(json.dumps(categories))
    boxes = [{"id": "r", "name": name, "role": role, "parentId": None}]
    boxes += [{"id": "a", "name": "Archive", "role": "archive", "parentId": None}]
    review = review_account(
        categories=cats, screener=screener, error_label="@E", mailboxes=boxes, groups=[]
    )
    assert any(f"the account's {role} mailbox" in c for c in review.conflicts), review.conflicts
    # An Archive destination stays allowed.
    categories[1] = {"name": "Feed", "destination": "Archive"}
    review = review_account(
        categories=parse_categories(json.dumps(categories)),
        screener="Screener",
        error_label="@E",
        mailboxes=boxes,
        groups=[],
    )
    assert not [c for c in review.conflicts if "Archive" in c]
