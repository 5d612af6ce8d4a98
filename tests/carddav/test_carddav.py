"""The CardDAV client and vCard handling against the stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from mailroom.carddav import vcard
from mailroom.carddav.book import CardDavBook
from mailroom.carddav.client import CardDavClient
from mailroom.carddav.errors import CardDavAuthError, CardDavError, PreconditionFailed
from mailroom.contacts.book import Change, ContactAction, Want
from mailroom.contacts.names import split_name
from mailroom.core.secret import Secret
from tests.conftest import Sleeps, ensure_groups, put_contact
from tests.faults import FaultySandbox

pytestmark = pytest.mark.anyio


@pytest.fixture
async def dav(sandbox: FaultySandbox) -> AsyncIterator[CardDavClient]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        client = CardDavClient(http, sandbox.url, sandbox.username, Secret(sandbox.password))
        await client.discover()
        yield client


async def test_discovery_follows_well_known(sandbox: FaultySandbox, dav: CardDavClient) -> None:
    assert dav.addressbook_url == sandbox.url + sandbox.contacts.book_path


async def test_search_by_email_is_case_insensitive(
    sandbox: FaultySandbox, dav: CardDavClient
) -> None:
    sandbox.contacts.write(
        "a.vcf", vcard.new_contact("uid-a", "Front@Desk.example", "Front Desk", "company")
    )
    book = CardDavBook(dav)
    found = await book.lookup([Want("front@desk.example", "", "company")])
    assert found.known["front@desk.example"].uid == "uid-a"
    # A text match on the server is confirmed exactly here.
    partial = await book.lookup([Want("desk.example", "", "company")])
    assert partial.known["desk.example"].action is ContactAction.CREATE


async def test_person_and_company_contacts(sandbox: FaultySandbox, dav: CardDavClient) -> None:
    book = CardDavBook(dav)
    person = await put_contact(book, "ann@x.org", "Ann Lee", "person")
    company = await put_contact(book, "news@corp.example", "", "company")
    p = vcard.parse(sandbox.contacts.contact_text("ann@x.org") or "")
    c = vcard.parse(sandbox.contacts.contact_text("news@corp.example") or "")
    assert (p.fn.value, p.n.value.given, p.n.value.family) == ("Ann Lee", "Ann", "Lee")
    assert "org" not in p.contents
    assert (c.fn.value, c.org.value) == ("news@corp.example", ["corp.example"])
    assert person.uid != company.uid
    assert person.action is company.action is ContactAction.KEEP


async def test_groups_are_created_once_and_membership_is_a_set(
    sandbox: FaultySandbox, dav: CardDavClient
) -> None:
    book = CardDavBook(dav)
    await ensure_groups(book, ["Feed", "Jail"])
    again = CardDavBook(dav)
    await ensure_groups(again, ["Feed", "Jail"])
    assert sandbox.contacts.groups_named("Feed") == 1
    contact = await put_contact(again, "z@x.org", "Zed", "company", join=("Feed", "Jail"))
    assert contact.groups == {"Feed", "Jail"}
    etags = {k: v.etag for k, v in sandbox.contacts.cards.items()}
    same = await put_contact(again, "z@x.org", "Zed", "company", join=("Feed",))
    assert same.groups == {"Feed", "Jail"}
    assert {k: v.etag for k, v in sandbox.contacts.cards.items()} == etags  # nothing written
    left = await put_contact(again, "z@x.org", "Zed", "company", leave=("Jail",))
    assert left.groups == {"Feed"}
    text = next(c.text for c in sandbox.contacts.cards.values() if "FN:Feed" in c.text)
    assert f"X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:{contact.uid}" in text
    assert "X-ADDRESSBOOKSERVER-KIND:group" in text


async def test_one_put_per_changed_group_whatever_the_senders(
    sandbox: FaultySandbox, dav: CardDavClient
) -> None:
    book = CardDavBook(dav)
    await ensure_groups(book, ["Feed", "Jail"])
    wants = [Want(f"n{i}@x.org", f"N {i}", "company") for i in range(20)]
    lookup = await book.lookup(wants)
    before = dav.requests_made
    changes = [Change(lookup.known[w.address], ("Feed",), ()) for w in wants]
    assert await book.apply(changes) == {}
    assert dav.requests_made - before == 20 + 1  # 20 new contacts, one group PUT
    assert len(sandbox.contacts.group_members("Feed")) == 20


async def test_stale_etag_gets_412(sandbox: FaultySandbox, dav: CardDavClient) -> None:
    card = await dav.create(vcard.new_group("g1", "G"), "g1")
    sandbox.contacts.write("g1.vcf", vcard.new_group("g1", "G renamed"))
    with pytest.raises(PreconditionFailed):
        await dav.update(card, vcard.new_group("g1", "G2"))
    with pytest.raises(PreconditionFailed):
        await dav.create(vcard.new_group("g1", "G"), "g1")  # never overwrites


async def test_412_retry_is_bounded(sandbox: FaultySandbox, dav: CardDavClient) -> None:
    sleeps = Sleeps()
    book = CardDavBook(dav, sleep=sleeps)
    await ensure_groups(book, ["Feed"])
    name = next(n for n, c in sandbox.contacts.cards.items() if "FN:Feed" in c.text)

    def always_race(card_name: str) -> None:
        text = sandbox.contacts.dav_text(name)
        sandbox.contacts.write(name, text)  # same text, new ETag: every write is stale

    sandbox.contacts.before_put = always_race
    sandbox.contacts.write("u.vcf", vcard.new_contact("u-1", "u@x.org", "U", "company"))
    lookup = await book.lookup([Want("u@x.org", "U", "company")])
    failed = await book.apply([Change(lookup.known["u@x.org"], ("Feed",), ())])
    assert isinstance(failed["u@x.org"], CardDavError)
    assert "kept changing" in str(failed["u@x.org"])
    assert len(sleeps.waits) == 5
    assert sleeps.waits == sorted(sleeps.waits)  # growing backoff


async def test_wrong_password_is_an_auth_error(sandbox: FaultySandbox) -> None:
    async with httpx.AsyncClient() as http:
        client = CardDavClient(http, sandbox.url, sandbox.username, Secret("nope-secret"))
        with pytest.raises(CardDavAuthError) as info:
            await client.discover()
    assert "rejected the username or password" in str(info.value)
    assert "nope-secret" not in str(info.value)


async def test_malformed_xml_is_a_clear_error(sandbox: FaultySandbox, dav: CardDavClient) -> None:
    sandbox.faults.force("carddav", 207, times=1)  # a 207 whose body is not XML
    with pytest.raises(CardDavError, match="malformed XML"):
        await dav.search("EMAIL", ["a@b.c"])


def test_vcard_member_edits_keep_other_lines() -> None:
    group = vcard.new_group("g", "Feed")
    one = vcard.with_member(group, "a")
    assert one is not None
    two = vcard.with_member(one, "b")
    assert two is not None and vcard.members(vcard.parse(two)) == {"a", "b"}
    assert vcard.with_member(two, "a") is None
    back = vcard.without_member(two, "a")
    assert back is not None and vcard.members(vcard.parse(back)) == {"b"}
    assert vcard.without_member(back, "zzz") is None
    assert vcard.display_name(vcard.parse(back)) == "Feed"


def test_fill_contact_only_fills_empty_fields() -> None:
    text = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:1\r\nFN:Mum\r\nN:;;;;\r\n"
        "EMAIL:mum@x.org\r\nTEL:123\r\nEND:VCARD\r\n"
    )
    filled = vcard.fill_contact(text, "mum@x.org", "Mary Smith", "person")
    assert filled is not None
    card = vcard.parse(filled)
    assert card.fn.value == "Mum"  # kept
    assert (card.n.value.given, card.n.value.family) == ("Mary", "Smith")  # was empty
    assert card.tel.value == "123"
    assert vcard.fill_contact(filled, "mum@x.org", "Other Name", "person") is None


def test_split_name() -> None:
    assert split_name("Doe, Jane") == ("Jane", "Doe")
    assert split_name("Jane  Q. Doe") == ("Jane Q.", "Doe")
    assert split_name("Cher") == ("Cher", "")


def test_unparseable_vcard_is_a_clear_error() -> None:
    with pytest.raises(vcard.VCardError, match="cannot parse"):
        vcard.parse("BEGIN:VCARD\r\nthis is not\r\n", "x.vcf")
