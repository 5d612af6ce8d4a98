"""Contacts behind one interface: backend choice, JSContact, and one store for two protocols."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailroom.carddav import vcard
from mailroom.carddav.book import CardDavBook
from mailroom.carddav.client import CardDavClient
from mailroom.contacts.book import Change, ContactAction, ContactsBackend, Want
from mailroom.contacts.select import ContactsChoice, ContactsUnavailable, choose_backend
from mailroom.core.secret import Secret
from mailroom.jmap import jscontact
from mailroom.jmap.client import JmapClient
from mailroom.jmap.contacts import JmapContactBook
from mailroom.jmap.wire import Call
from tests.conftest import ensure_groups, put_contact
from tests.faults import FaultySandbox

pytestmark = pytest.mark.anyio

# -- choosing the backend (pure) -------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "jmap", "dav", "backend", "why"),
    [
        (ContactsChoice.AUTO, True, False, ContactsBackend.JMAP, "no CardDAV password is set"),
        (ContactsChoice.AUTO, True, True, ContactsBackend.CARDDAV, "a CardDAV password is set"),
        (ContactsChoice.AUTO, False, True, ContactsBackend.CARDDAV, "a CardDAV password is set"),
        (ContactsChoice.JMAP, True, True, ContactsBackend.JMAP, "MAILROOM_CONTACTS=jmap"),
        (ContactsChoice.CARDDAV, True, True, ContactsBackend.CARDDAV, "MAILROOM_CONTACTS=carddav"),
    ],
)
def test_backend_choice(
    choice: ContactsChoice, jmap: bool, dav: bool, backend: ContactsBackend, why: str
) -> None:
    selection = choose_backend(choice, jmap_contacts=jmap, carddav_configured=dav)
    assert selection.backend is backend
    assert why in selection.reason


def test_backend_choice_errors_name_what_is_missing() -> None:
    with pytest.raises(ContactsUnavailable) as info:
        choose_backend(ContactsChoice.JMAP, jmap_contacts=False, carddav_configured=True)
    assert str(info.value).startswith(
        "MAILROOM_CONTACTS=jmap, but the JMAP session offers no urn:ietf:params:jmap:contacts"
    )
    with pytest.raises(ContactsUnavailable) as info:
        choose_backend(ContactsChoice.AUTO, jmap_contacts=False, carddav_configured=False)
    text = str(info.value)
    assert "offers no urn:ietf:params:jmap:contacts" in text
    assert "MAILROOM_CARDDAV_USERNAME and MAILROOM_CARDDAV_PASSWORD" in text


# -- JSContact (pure) -------------------------------------------------------------------


def test_fill_patch_fills_only_what_is_empty() -> None:
    bare = {"id": "c1", "uid": "u1", "emails": {"e": {"address": "Desk@Dentist.example"}}}
    patch = jscontact.fill_patch(bare, "desk@dentist.example", "Dentist Ltd", "company")
    assert patch == {
        "name": {"@type": "Name", "full": "Dentist Ltd"},
        "organizations": {"org": {"@type": "Organization", "name": "Dentist Ltd"}},
    }
    mum = {
        "uid": "u2",
        "name": {"full": "Mum", "phoneticScript": "Latn"},
        "emails": {"e": {"address": "mum@x.org"}},
    }
    assert jscontact.fill_patch(mum, "mum@x.org", "Jane Doe", "person") == {
        "name/components": [
            {"@type": "NameComponent", "kind": "given", "value": "Jane"},
            {"@type": "NameComponent", "kind": "surname", "value": "Doe"},
        ]
    }
    assert jscontact.fill_patch(mum, "mum@x.org", "", "person") == {}


def test_member_paths_escape_json_pointer() -> None:
    assert jscontact.member_path("urn:uuid:a/b~c") == "members/urn:uuid:a~1b~0c"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
CARDS = st.dictionaries(
    st.sampled_from(["uid", "kind", "name", "emails", "organizations", "members", "id"]),
    JSON | st.fixed_dictionaries({"full": JSON, "components": JSON}),
)


@settings(max_examples=300, deadline=None)
@given(card=CARDS, name=st.text(max_size=12), kind=st.sampled_from(["person", "company"]))
def test_any_server_card_reads_safely_and_is_never_overwritten(
    card: dict[str, Any], name: str, kind: Any
) -> None:
    # Whatever JSON a server sends, reading it never raises …
    jscontact.emails(card), jscontact.members(card), jscontact.display_name(card)
    patch = jscontact.fill_patch(card, "a@b.example", name, kind)
    # … and a fill only ever writes where the card had nothing.
    for path in patch:
        top, _, rest = path.partition("/")
        if not rest:
            current = card.get(top)
            assert not current or (top == "name" and not jscontact.display_name(card))
        elif top == "name":
            assert isinstance(card.get("name"), dict)
            assert not jscontact.display_name(card) or rest == "components"


# -- one store, two protocols, on the stand-in -----------------------------------------


async def test_a_group_made_over_carddav_is_seen_and_used_over_jmap() -> None:
    with FaultySandbox() as sb:
        async with httpx.AsyncClient(timeout=10) as http:
            dav = CardDavBook(CardDavClient(http, sb.url, sb.username, Secret(sb.password)))
            await dav.open()
            await ensure_groups(dav, ["Feed"])
            dav_contact = await put_contact(dav, "old@x.org", "Old Friend", "company", ("Feed",))

            jmap = JmapClient(http, sb.session_url, Secret(sb.token))
            await jmap.discover()
            book = JmapContactBook(jmap)
            assert "address book 'Personal'" in await book.open()
            assert set(await book.find_groups(["Feed", "Jail"])) == {"Feed"}

            # The CardDAV-made member is a member over JMAP: the UID is the join key.
            seen = (await book.lookup([Want("old@x.org", "", "company")])).known["old@x.org"]
            assert (seen.uid, set(seen.groups)) == (dav_contact.uid, {"Feed"})

            # A JMAP-made contact joins the CardDAV-made group: a vCard member line.
            new = await put_contact(book, "new@x.org", "New Co", "company", ("Feed",))
            assert new.groups == {"Feed"}
            members = sb.contacts.group_members("Feed")
            assert members == {dav_contact.uid, str(new.uid).removeprefix("urn:uuid:")}
            card = vcard.parse(sb.contacts.contact_text("new@x.org") or "")
            assert (card.fn.value, card.org.value) == ("New Co", ["New Co"])
            # And CardDAV reads the JMAP-made membership back.
            again = (await dav.lookup([Want("new@x.org", "", "company")])).known["new@x.org"]
            assert again.groups == {"Feed"} and again.action is ContactAction.KEEP

            # Leaving is a patch of one key: the other member stays.
            await put_contact(book, "new@x.org", "New Co", "company", leave=("Feed",))
            assert sb.contacts.group_members("Feed") == {dav_contact.uid}


async def test_jmap_membership_is_a_patch_not_a_rewrite() -> None:
    with FaultySandbox() as sb:
        async with httpx.AsyncClient(timeout=10) as http:
            jmap = JmapClient(http, sb.session_url, Secret(sb.token))
            await jmap.discover()
            book = JmapContactBook(jmap)
            await book.open()
            await ensure_groups(book, ["Feed"])
            lookup = await book.lookup([Want("z@x.org", "Zed", "company")])
            # Another client adds a member between our read and our write.
            name = next(n for n, c in sb.contacts.cards.items() if "FN:Feed" in c.text)
            text = vcard.with_member(sb.contacts.dav_text(name), "someone-else")
            assert text is not None
            sb.contacts.write(name, text)
            assert await book.apply([Change(lookup.known["z@x.org"], ("Feed",), ())]) == {}
            uid = sb.contacts.contact_uid("z@x.org")
            assert sb.contacts.group_members("Feed") == {"someone-else", uid}


# -- contacts exactly as Cyrus (Fastmail) stores them, on the stand-in -------------------


async def jmap_book(sb: FaultySandbox, http: httpx.AsyncClient) -> JmapContactBook:
    jmap = JmapClient(http, sb.session_url, Secret(sb.token))
    await jmap.discover()
    book = JmapContactBook(jmap)
    await book.open()
    await ensure_groups(book, ["Feed", "Jail"])
    return book


@pytest.mark.parametrize(
    "address", ["o'brien@x.org", "a+b@x.org", "a.b-c_d@x.org", "d'arcy.o'neil@x.org"]
)
async def test_an_address_is_found_again_whatever_characters_it_holds(address: str) -> None:
    with FaultySandbox() as sb:
        async with httpx.AsyncClient(timeout=10) as http:
            book = await jmap_book(sb, http)
            first = await put_contact(book, address, "Olivia", "company", ("Feed",))
            moved = await put_contact(book, address, "Olivia", "company", ("Jail",), ("Feed",))
            assert moved.uid == first.uid  # the same card, not a second one
            assert sb.contacts.groups_of_address(address) == {"Jail"}
            assert sum(1 for _, c in sb.contacts.parsed() if address in vcard.emails(c)) == 1


def test_the_email_phrase_escapes_what_the_server_reads_as_syntax() -> None:
    assert jscontact.email_phrase("o'brien@x.org") == "'o\\'brien@x.org'"
    assert jscontact.email_phrase("a\\b@x.org") == "'a\\\\b@x.org'"
    assert jscontact.email_phrase("plain@x.org") == "'plain@x.org'"


@given(st.text(min_size=1, max_size=30))
def test_every_address_is_found_by_its_own_phrase(local: str) -> None:
    from mailroom.sandbox.textsearch import TextQuery

    address = f"{local}@x.org"
    assert TextQuery.parse(jscontact.email_phrase(address)).matches(address)
    assert TextQuery.parse(jscontact.email_phrase(address.upper())).matches(address)


async def test_new_contacts_and_groups_get_bare_lowercase_uids() -> None:
    with FaultySandbox() as sb:
        async with httpx.AsyncClient(timeout=10) as http:
            book = await jmap_book(sb, http)
            known = await put_contact(book, "fresh@x.org", "Fresh", "company", ("Feed",))
            assert known.uid is not None and known.uid == known.uid.lower()
            assert not known.uid.startswith("urn:") and len(known.uid) == 36
            # What an iPhone reads resolves: urn:uuid:<uid>, never a doubled prefix.
            feed = next(
                sb.contacts.dav_text(n) for n, c in sb.contacts.cards.items() if "FN:Feed" in c.text
            )
            assert f"X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:{known.uid}" in feed
            assert '"' not in feed


async def test_a_member_under_another_spelling_is_joined_once_and_left_entirely() -> None:
    with FaultySandbox() as sb:
        async with httpx.AsyncClient(timeout=10) as http:
            book = await jmap_book(sb, http)
            jmap = JmapClient(http, sb.session_url, Secret(sb.token))
            await jmap.discover()
            legacy = "urn:uuid:3f0c2a8e-0000-4000-8000-000000000001"
            sb.contacts.write(
                "legacy.vcf",
                f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{legacy}\r\nFN:Legacy\r\nN:;;;;\r\n"
                "EMAIL:legacy@x.org\r\nEND:VCARD\r\n",
            )
            feed = book.groups["Feed"]
            bare = legacy.removeprefix("urn:uuid:")
            answer = await jmap.request(  # an earlier client's two spellings
                [
                    Call(
                        "ContactCard/set",
                        {"update": {feed: {f"members/{legacy}": True, f"members/{bare}": True}}},
                        "s",
                    )
                ]
            )
            assert feed in answer.get("s")["updated"]
            known = (await book.lookup([Want("legacy@x.org", "", "company")])).known
            assert known["legacy@x.org"].groups == {"Feed"}
            # Joining Feed again writes nothing; leaving clears both spellings.
            assert await book.apply([Change(known["legacy@x.org"], ("Feed",), ())]) == {}
            assert await book.apply([Change(known["legacy@x.org"], ("Jail",), ("Feed",))]) == {}
            view = sb.contacts_api._views()[feed]  # type: ignore[union-attr]
            assert view["members"] == {}
            assert sb.contacts.groups_of_address("legacy@x.org") == {"Jail"}


async def test_a_group_without_a_members_map_gets_the_whole_map() -> None:
    with FaultySandbox() as sb:
        assert sb.contacts_api is not None
        sb.contacts_api.omit_empty_members = True  # a server leaving out an empty map
        async with httpx.AsyncClient(timeout=10) as http:
            jmap = JmapClient(http, sb.session_url, Secret(sb.token))
            await jmap.discover()
            book = JmapContactBook(jmap)
            await book.open()
            await ensure_groups(book, ["Feed"])
            wants = [Want(f"w{n}@x.org", "", "company") for n in range(3)]
            lookup = await book.lookup(wants)
            changes = [Change(lookup.known[w.address], ("Feed",), ()) for w in wants]
            assert await book.apply(changes) == {}
            assert len(sb.contacts.group_members("Feed")) == 3


async def test_a_contact_only_in_a_read_only_book_joins_without_a_fill() -> None:
    from mailroom.sandbox.contactstore import SHARED_BOOK

    with FaultySandbox() as sb:
        sb.contacts.write(
            "shared.vcf",
            "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:shared-1\r\nFN:\r\nN:;;;;\r\n"
            "EMAIL:shared@x.org\r\nEND:VCARD\r\n",
            book=SHARED_BOOK,
        )
        async with httpx.AsyncClient(timeout=10) as http:
            book = await jmap_book(sb, http)
            assert book.book_id == "default"  # the default book, though listed second
            known = await put_contact(book, "shared@x.org", "Shared Person", "person", ("Feed",))
            assert known.action is ContactAction.KEEP  # nothing to fill where it cannot be
            assert known.groups == {"Feed"}
            assert "FN:\r\n" in sb.contacts.cards["shared.vcf"].text  # untouched
            # A new contact goes to the default book, never the read-only one.
            new = await put_contact(book, "new@x.org", "New", "company")
            assert new.uid is not None
            assert {c.book for c in sb.contacts.cards.values() if "new@x.org" in c.text} == {
                "default"
            }


async def test_contact_writes_are_chunked_by_max_objects_in_set() -> None:
    from mailroom.sandbox.mailstore import MailStore

    with FaultySandbox(mail=MailStore(max_calls=2, max_set=3)) as sb:
        async with httpx.AsyncClient(timeout=10) as http:
            book = await jmap_book(sb, http)
            wants = [Want(f"c{n}@x.org", f"C {n}", "company") for n in range(7)]
            lookup = await book.lookup(wants)
            before = sb.total_requests()
            changes = [Change(lookup.known[w.address], ("Feed",), ()) for w in wants]
            assert await book.apply(changes) == {}
            # 7 creates + 1 group patch = 8 objects: 3 calls of <= 3, 2 calls a request.
            assert sb.total_requests() - before == 2
            assert len(sb.contacts.group_members("Feed")) == 7


async def test_carddav_discovery_picks_the_writable_default_book() -> None:
    with FaultySandbox() as sb:
        async with httpx.AsyncClient(timeout=10) as http:
            client = CardDavClient(http, sb.url, sb.username, Secret(sb.password))
            assert (await client.discover()).endswith("/Default/")
