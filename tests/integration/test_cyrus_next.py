"""Mailroom on Cyrus 3.13-dev over JMAP contacts (RFC 9610), the token alone.

This is the closest thing to Fastmail's server here: every contacts rule is
checked against what the real server stores, not against the stand-in.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from mailroom.carddav.book import CardDavBook
from mailroom.carddav.client import CardDavClient
from mailroom.contacts.book import Change, Want
from mailroom.core.secret import Secret
from tests.contract.servers import CyrusNext, dav_cards, dav_put, lines
from tests.integration.cyrus import Cyrus, carddav_client
from tests.integration.next_account import (
    LABELS,
    NextAccount,
    open_account,
    tagged_categories,
    unique,
)

pytestmark = pytest.mark.anyio
CATEGORIES = list(LABELS)
BARE_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def chain(category: str) -> set[str]:
    return {"Person", "Imbox"} if category == "Person" else {category}


def deliver(cyrus: Cyrus, sender: str, count: int = 1, name: str = "Sender") -> list[str]:
    for n in range(count):
        cyrus.deliver(sender, name, f"{sender} {n}")
    mail = cyrus.wait_for_mail(sender, count)
    assert len(mail) == count, f"{sender}: {len(mail)} of {count} delivered"
    return sorted(mail)


async def open_tagged(cyrus: Cyrus, http: httpx.AsyncClient, tag: str) -> NextAccount:
    """An account with categories of its own (Feed<tag>, Jail<tag>): a test may
    change their groups and rights without touching the others'."""
    return await open_account(
        cyrus, http, categories=tagged_categories(tag, "Feed", "Jail"), error_label=f"@Err{tag}"
    )


@pytest.fixture
async def account(cyrus_next: Cyrus) -> AsyncIterator[NextAccount]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield await open_account(cyrus_next, http)


# -- addresses whatever characters they hold ----------------------------------------------


@pytest.mark.parametrize("local", ["o'brien", "a+b", "a.b-c_d", "Upper.Case", "d'arcy.o'neil"])
async def test_a_retriage_moves_the_one_contact_whatever_the_address(
    account: NextAccount, local: str
) -> None:
    a = account
    sender = unique(local)
    first, second = deliver(a.cyrus, sender, 2, "Olivia O'Brien")
    a.cyrus.label(first, "@ToFeed")
    assert (await a.triage.run_pass()).senders_triaged == 1
    assert a.groups_of(sender.lower()) == {"Feed"}

    a.cyrus.label(second, "@ToJail")
    result = await a.triage.run_pass()

    assert (result.senders_triaged, result.failures) == (1, 0)
    assert len(a.cards_with(sender)) == 1  # found again, not made a second time
    assert a.groups_of(sender.lower()) == {"Jail"}
    assert all(boxes == {"Jail"} for boxes in a.cyrus.emails_from(sender).values())


async def test_fifty_senders_with_every_kind_of_address_in_one_pass(account: NextAccount) -> None:
    a = account
    tag = uuid.uuid4().hex[:6]
    shapes = ["o'brien{}", "a+b{}", "a.b-c_d{}", "Upper.Case{}", "d'arcy{}"]
    senders = [shape.format(n) + f"-{tag}@example.org" for n in range(10) for shape in shapes]
    for sender in senders:
        a.cyrus.deliver(sender, "Many", "one")
    found = a.cyrus.wait_for_mail_of(senders, 1)
    for sender in senders:
        (email,) = found[sender.lower()]
        a.cyrus.label(email, "@ToFeed")
    assert (await a.triage.run_pass()).senders_triaged == 50
    # Everything again, to Paper Trail: fifty quoted phrases in one OR.
    found = a.cyrus.mail_of(senders)
    for sender in senders:
        (email,) = found[sender.lower()]
        a.cyrus.label(email, "@ToPaperTrail")
    result = await a.triage.run_pass()
    assert (result.senders_triaged, result.failures) == (50, 0)
    for sender in senders:
        assert a.groups_of(sender.lower()) == {"Paper Trail"}, sender


# -- re-triage between every pair of categories ------------------------------------------------


async def test_retriage_between_every_pair_of_categories(account: NextAccount) -> None:
    a = account
    pairs = [(old, new) for old in CATEGORIES for new in CATEGORIES if old != new]
    senders = {pair: unique(f"pair{n}") for n, pair in enumerate(pairs)}
    mail = {s: deliver(a.cyrus, s, 2) for s in senders.values()}
    for (old, _), sender in senders.items():
        a.cyrus.label(mail[sender][0], LABELS[old])
    assert (await a.triage.run_pass()).senders_triaged == len(pairs)
    for (_, new), sender in senders.items():
        a.cyrus.label(mail[sender][1], LABELS[new])

    result = await a.triage.run_pass()

    assert (result.senders_triaged, result.failures) == (len(pairs), 0)
    destinations = set(CATEGORIES)
    for (old, new), sender in senders.items():
        assert a.groups_of(sender) == chain(new), (old, new)
        for boxes in a.cyrus.emails_from(sender).values():
            assert boxes & destinations == chain(new), (old, new, boxes)
            assert not boxes & {"Screener", *LABELS.values()}, (old, new, boxes)


async def test_conflicting_labels_flag_the_sender_and_write_no_contact(
    account: NextAccount,
) -> None:
    a = account
    sender = unique("conflict")
    first, second = deliver(a.cyrus, sender, 2)
    a.cyrus.label(first, "@ToFeed")
    a.cyrus.label(second, "@ToJail")
    result = await a.triage.run_pass()
    assert (result.conflicts, result.senders_triaged) == (1, 0)
    assert a.cards_with(sender) == []
    boxes = a.cyrus.emails_from(sender)
    assert boxes[first] == {"Screener", "@ToFeed", "@MailroomError"}
    assert boxes[second] == {"Screener", "@ToJail", "@MailroomError"}


async def test_one_sender_failing_among_many(cyrus_next: Cyrus) -> None:
    tag = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(timeout=30) as http:
        a = await open_tagged(cyrus_next, http, tag)
        good = [unique(f"good{n}") for n in range(3)]
        bad = unique("bad")
        mail = {s: deliver(cyrus_next, s) for s in [*good, bad]}
        for s in good:
            cyrus_next.label(mail[s][0], f"@ToFeed{tag}")
        cyrus_next.label(mail[bad][0], f"@ToJail{tag}")
        # The server refuses to file anything into that sender's destination.
        imap = cyrus_next.imap(admin=True)
        jail = f"user/{cyrus_next.account}/Jail{tag}"
        assert imap.setacl(jail, cyrus_next.account, "lrs")[0] == "OK"

        result = await a.triage.run_pass()

        assert (result.senders_triaged, result.failures) == (3, 1)
        for s in good:
            assert a.groups_of(s) == {f"Feed{tag}"}
            assert all(b == {f"Feed{tag}"} for b in cyrus_next.emails_from(s).values())
        assert cyrus_next.emails_from(bad)[mail[bad][0]] == {"Screener", f"@ToJail{tag}"}

        assert imap.setacl(jail, cyrus_next.account, "lrswipkxtecdan")[0] == "OK"
        imap.logout()
        again = await a.triage.run_pass()  # the next pass retries it
        assert (again.senders_triaged, again.failures) == (1, 0)
        assert cyrus_next.emails_from(bad)[mail[bad][0]] == {f"Jail{tag}"}


async def test_paging_and_small_request_limits(cyrus_next: Cyrus) -> None:
    senders = [unique(f"page{n}") for n in range(7)]
    mail = {s: deliver(cyrus_next, s, 2) for s in senders}
    for limits in ({"max_calls_in_request": 1}, {"max_calls_in_request": 2}):
        caps = {"max_objects_in_get": 3, "max_objects_in_set": 2, **limits}
        async with httpx.AsyncClient(timeout=30) as http:
            a = await open_account(cyrus_next, http, caps=caps)
            target = "Feed" if limits["max_calls_in_request"] == 1 else "Paper Trail"
            for s in senders:
                cyrus_next.label(mail[s][limits["max_calls_in_request"] - 1], LABELS[target])
            result = await a.triage.run_pass()
            assert (result.senders_triaged, result.failures) == (7, 0), limits
            for s in senders:
                assert a.groups_of(s) == {target}
                assert all(b == {target} for b in cyrus_next.emails_from(s).values())


async def test_a_dry_run_changes_nothing(cyrus_next: Cyrus) -> None:
    sender = unique("dry")
    (email,) = deliver(cyrus_next, sender)
    async with httpx.AsyncClient(timeout=30) as http:
        a = await open_account(cyrus_next, http, dry_run=True)
        cyrus_next.label(email, "@ToFeed")
        before = (cyrus_next.emails_from(sender), a.groups())
        await a.triage.run_pass()
        assert (cyrus_next.emails_from(sender), a.groups()) == before
        assert a.cards_with(sender) == []
        cyrus_next.label(email, "@ToFeed", on=False)  # the account is shared by later tests


# -- member keys, uids, groups ---------------------------------------------------------------


async def test_new_contacts_get_bare_uids_that_vcard3_readers_resolve(
    account: NextAccount,
) -> None:
    a = account
    sender = unique("fresh")
    (email,) = deliver(a.cyrus, sender)
    a.cyrus.label(email, "@ToPerson")
    await a.triage.run_pass()
    (card,) = a.cards_with(sender)
    assert BARE_UUID.fullmatch(card["uid"])
    assert card["@type"] == "Card" and card["version"] == "1.0"
    assert card["addressBookIds"] == {a.book.book_id: True}
    # An iPhone (vCard 3.0) reads the group and finds the member.
    server = CyrusNext(a.cyrus)
    person = dav_cards(server)[a.groups()["Person"]["uid"]]
    assert f"urn:uuid:{card['uid']}" in lines(person, "X-ADDRESSBOOKSERVER-MEMBER")
    assert not any('"' in m for m in lines(person, "X-ADDRESSBOOKSERVER-MEMBER"))


async def test_member_keys_are_compared_by_meaning(account: NextAccount) -> None:
    a = account
    sender = unique("legacy")
    (email,) = deliver(a.cyrus, sender)
    # An earlier Mailroom made the contact with a urn:uuid: uid and put it in
    # Feed under that key, and another client added the bare spelling too.
    uid = str(uuid.uuid4())
    made = a.cyrus.jmap(
        [
            "ContactCard/set",
            {
                "accountId": a.cyrus.account,
                "create": {
                    "c": {
                        "@type": "Card",
                        "version": "1.0",
                        "uid": f"urn:uuid:{uid}",
                        "name": {"@type": "Name", "full": "Legacy"},
                        "emails": {"e": {"@type": "EmailAddress", "address": sender}},
                    }
                },
            },
            "s",
        ]
    )
    assert made[0][1]["created"]
    groups = a.groups()
    keys = {f"members/urn:uuid:{uid}": True, f"members/{uid}": True}
    a.cyrus.jmap(
        [
            "ContactCard/set",
            {"accountId": a.cyrus.account, "update": {groups["Feed"]["id"]: keys}},
            "u",
        ]
    )
    assert a.groups_of(sender) == {"Feed"}

    a.cyrus.label(email, "@ToFeed")  # already there: no second key
    await a.triage.run_pass()
    assert sorted(a.member_keys("Feed", uid)) == sorted([uid, f"urn:uuid:{uid}"])

    (email,) = a.cyrus.emails_from(sender)
    a.cyrus.label(email, "@ToJail")
    result = await a.triage.run_pass()

    assert (result.senders_triaged, result.failures) == (1, 0)
    assert a.member_keys("Feed", uid) == []  # every spelling gone
    assert a.member_keys("Jail", uid) == [f"urn:uuid:{uid}"]  # the card's own uid
    assert a.groups_of(sender) == {"Jail"}


# -- address books -------------------------------------------------------------------------


async def test_a_contact_in_a_read_only_book_joins_its_group_without_a_fill(
    account: NextAccount,
) -> None:
    a = account
    sender = unique("shared")
    (email,) = deliver(a.cyrus, sender, 1, "Shared Person")
    card_id = CyrusNext(a.cyrus).read_only_card(sender)  # no name: a fill would write one
    async with httpx.AsyncClient(timeout=30) as http:
        fresh = await open_account(a.cyrus, http)  # sees the new read-only book
        a.cyrus.label(email, "@ToImbox")
        result = await fresh.triage.run_pass()
    assert (result.senders_triaged, result.failures) == (1, 0)
    (card,) = a.cards_with(sender)
    assert card["id"] == card_id and "name" not in card  # never written
    assert a.groups_of(sender) == {"Imbox"}


# -- one store, two protocols --------------------------------------------------------------


async def test_apple_style_groups_and_contacts_used_and_changed_over_jmap(
    cyrus_next: Cyrus,
) -> None:
    """An earlier Mailroom (or an iPhone) made the groups and the contact over CardDAV."""
    tag = uuid.uuid4().hex[:6]
    server = CyrusNext(cyrus_next)
    feed_uid, jail_uid, contact_uid = (str(uuid.uuid4()).upper() for _ in range(3))
    sender = unique("apple")
    dav_put(
        server,
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{contact_uid}\r\nFN:Apple Person\r\n"
        f"N:Person;Apple;;;\r\nEMAIL;TYPE=INTERNET:{sender}\r\nNOTE:keep me\r\n"
        "TEL;TYPE=CELL:+1 555 0100\r\nEND:VCARD\r\n",
        contact_uid,
    )
    for group_uid, name, members in (
        (feed_uid, f"Feed{tag}", [contact_uid]),
        (jail_uid, f"Jail{tag}", []),
    ):
        member_lines = "".join(f"X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:{m}\r\n" for m in members)
        dav_put(
            server,
            f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{group_uid}\r\nFN:{name}\r\nN:{name};;;;\r\n"
            f"X-ADDRESSBOOKSERVER-KIND:group\r\n{member_lines}END:VCARD\r\n",
            group_uid,
        )
    (email,) = deliver(cyrus_next, sender)
    async with httpx.AsyncClient(timeout=30) as http:
        a = await open_tagged(cyrus_next, http, tag)
        assert a.groups_of(sender) == {f"Feed{tag}"}  # the DAV member, read over JMAP
        cyrus_next.label(email, f"@ToJail{tag}")
        result = await a.triage.run_pass()
        assert (result.senders_triaged, result.failures) == (1, 0)
        assert a.groups_of(sender) == {f"Jail{tag}"}

    v3 = dav_cards(server)
    assert lines(v3[feed_uid], "X-ADDRESSBOOKSERVER-MEMBER") == []
    assert lines(v3[jail_uid], "X-ADDRESSBOOKSERVER-MEMBER") == [f"urn:uuid:{contact_uid}"]
    assert lines(v3[contact_uid], "NOTE") == ["keep me"]  # the user's fields untouched
    assert lines(v3[contact_uid], "TEL") == ["+1 555 0100"]
    v4 = dav_cards(server, "4.0")
    assert lines(v4[jail_uid], "MEMBER") == [contact_uid]
    # And an Apple-style client (Mailroom's own CardDAV backend) agrees.
    assert await dav_groups(cyrus_next, sender, [f"Feed{tag}", f"Jail{tag}"]) == {f"Jail{tag}"}


async def test_jmap_made_groups_read_and_changed_over_carddav(cyrus_next: Cyrus) -> None:
    """The reverse: groups Mailroom made over JMAP, one of them with a legacy urn:uuid: key."""
    tag = uuid.uuid4().hex[:6]
    sender = unique("reverse")
    (email,) = deliver(cyrus_next, sender)
    async with httpx.AsyncClient(timeout=30) as http:
        a = await open_tagged(cyrus_next, http, tag)
        cyrus_next.label(email, f"@ToFeed{tag}")
        await a.triage.run_pass()
        (card,) = a.cards_with(sender)
        feed = a.groups()[f"Feed{tag}"]
        # A legacy spelling beside it, as an earlier Mailroom wrote it over JMAP.
        cyrus_next.jmap(
            [
                "ContactCard/set",
                {
                    "accountId": cyrus_next.account,
                    "update": {feed["id"]: {f"members/urn:uuid:{card['uid']}": True}},
                },
                "u",
            ]
        )
        v3 = dav_cards(CyrusNext(cyrus_next))[feed["uid"]]
        assert sorted(lines(v3, "X-ADDRESSBOOKSERVER-MEMBER")) == sorted(
            [f"urn:uuid:{card['uid']}", f'urn:uuid:"urn:uuid:{card["uid"]}"']
        )
        v4 = dav_cards(CyrusNext(cyrus_next), "4.0")[feed["uid"]]
        assert sorted(lines(v4, "MEMBER")) == sorted([card["uid"], f"urn:uuid:{card['uid']}"])

        # Mailroom over CardDAV on the same account re-triages it to Jail.
        client = CardDavClient(
            http,
            cyrus_next.base_url,
            cyrus_next.env["CYRUS_USER"],
            Secret(cyrus_next.env["CYRUS_PASS"]),
        )
        await client.discover()
        book = CardDavBook(client)
        await book.find_groups([f"Feed{tag}", f"Jail{tag}"])
        known = (await book.lookup([Want(sender, "", "company")])).known[sender]
        assert known.groups == {f"Feed{tag}"}  # both spellings resolve to it
        assert await book.apply([Change(known, (f"Jail{tag}",), (f"Feed{tag}",))]) == {}
        assert a.member_keys(f"Feed{tag}", card["uid"]) == []  # every line gone
        assert a.groups_of(sender) == {f"Jail{tag}"}


async def dav_groups(cyrus: Cyrus, address: str, names: list[str]) -> set[str]:
    async with httpx.AsyncClient(timeout=30) as http:
        client = carddav_client(cyrus, http)
        await client.discover()
        book = CardDavBook(client)
        await book.find_groups(names)
        return set((await book.lookup([Want(address, "", "company")])).known[address].groups)


async def test_drafts_are_never_refiled(account: NextAccount) -> None:
    a = account
    sender = unique("mine")
    # A draft that names them as its From (a message being re-sent, say); what
    # sits in Sent is from the user (and its From counts as the user's own).
    a.cyrus.append(sender, "Me", "in Drafts", "Drafts")
    a.cyrus.deliver(sender, "Me", "screened")
    mail = a.cyrus.wait_for_mail(sender, 2)
    (screened,) = [e for e, boxes in mail.items() if boxes == {"Screener"}]
    a.cyrus.label(screened, "@ToImbox")
    result = await a.triage.run_pass()
    assert (result.senders_triaged, result.failures) == (1, 0)
    boxes = sorted(a.cyrus.emails_from(sender).values(), key=sorted)
    assert {frozenset(b) for b in boxes} == {
        frozenset({"Drafts"}),
        frozenset({"Imbox", "Inbox"}),
    }, mail
