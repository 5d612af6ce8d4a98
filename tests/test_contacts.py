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
from mailroom.contacts.book import ContactAction, ContactsBackend, Want
from mailroom.contacts.select import ContactsChoice, ContactsUnavailable, choose_backend
from mailroom.core.secret import Secret
from mailroom.jmap import jscontact
from mailroom.jmap.client import JmapClient
from mailroom.jmap.contacts import JmapContactBook
from mailroom.sandbox.server import Sandbox
from tests.conftest import ensure_groups, put_contact

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
    with Sandbox() as sb:
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
    with Sandbox() as sb:
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
            from mailroom.contacts.book import Change

            assert await book.apply([Change(lookup.known["z@x.org"], ("Feed",), ())]) == {}
            uid = sb.contacts.contact_uid("z@x.org")
            assert sb.contacts.group_members("Feed") == {"someone-else", uid}
