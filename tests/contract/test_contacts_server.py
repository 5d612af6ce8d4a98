"""What a JMAP Contacts server does, pinned on the stand-in and on Cyrus 3.13-dev alike.

Each behaviour Mailroom's contacts code depends on (or must defend against)
is asserted here against both servers with raw requests, so the stand-in
(which the unit tests and the soak run on) can never be more lenient than the
real server, and cannot drift from it unnoticed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import escape

import pytest

from mailroom.jmap.jscontact import email_phrase
from tests.contract.servers import (
    ContactsServer,
    CyrusNext,
    StandIn,
    dav_cards,
    dav_put,
    dav_query,
    lines,
    new_card,
    new_group,
)
from tests.faults import FaultySandbox


@pytest.fixture(
    params=["stand-in", pytest.param("cyrus-next", marks=pytest.mark.integration)],
)
def server(request: pytest.FixtureRequest) -> Iterator[ContactsServer]:
    if request.param == "stand-in":
        with FaultySandbox(flavour="fastmail") as sb:
            yield StandIn(sb)
    else:
        yield CyrusNext(request.getfixturevalue("cyrus_next"))


def one(server: ContactsServer, name: str, args: dict[str, Any]) -> dict[str, Any]:
    ((method, answer, _),) = server.jmap([name, args, "x"])
    assert method == name, answer
    return dict(answer)


def create(server: ContactsServer, **cards: dict[str, Any]) -> dict[str, Any]:
    return one(server, "ContactCard/set", {"create": cards})


def ids_for(server: ContactsServer, email: str) -> set[str]:
    return set(one(server, "ContactCard/query", {"filter": {"email": email}})["ids"])


def card(server: ContactsServer, card_id: str) -> dict[str, Any]:
    got = one(server, "ContactCard/get", {"ids": [card_id]})
    (found,) = got["list"]
    return dict(found)


def unique(local: str) -> str:
    return f"{local}@{uuid.uuid4().hex[:8]}.example"


# -- the email filter is a search query ----------------------------------------------------


def test_an_address_with_an_apostrophe_is_found_only_as_a_quoted_phrase(
    server: ContactsServer,
) -> None:
    address = unique("o'brien")
    made = create(server, a=new_card(address))["created"]["a"]["id"]
    assert ids_for(server, address) == set()  # ' opens a phrase: the bare address finds nothing
    assert ids_for(server, email_phrase(address)) == {made}
    assert ids_for(server, email_phrase(address.upper())) == {made}  # case-insensitive


def test_a_phrase_is_a_substring_and_bare_words_need_every_word(server: ContactsServer) -> None:
    domain = f"{uuid.uuid4().hex[:8]}.example"
    plus = create(server, a=new_card(f"a+b@{domain}"))["created"]["a"]["id"]
    dotted = create(server, a=new_card(f"a.b-c_d@{domain}"))["created"]["a"]["id"]
    longer = create(server, a=new_card(f"ba@{domain}"))["created"]["a"]["id"]
    # Bare, an address is its words: a, b, the domain's; both cards have them.
    assert ids_for(server, f"a+b@{domain}") == {plus, dotted}
    assert ids_for(server, email_phrase(f"a+b@{domain}")) == {plus}
    assert ids_for(server, email_phrase(f"a.b-c_d@{domain}")) == {dotted}
    # A phrase is a substring: the exact address must still be compared.
    assert ids_for(server, email_phrase(f"a@{domain}")) == {longer}


def test_an_or_of_fifty_quoted_addresses_finds_every_card(server: ContactsServer) -> None:
    domain = f"{uuid.uuid4().hex[:8]}.example"
    shapes = ["o'brien{}", "a+b{}", "a.b-c_d{}", "UPPER.Case{}", "d'arcy.o'neil{}"]
    addresses = [shape.format(n) + f"@{domain}" for n in range(10) for shape in shapes]
    made = create(server, **{f"c{n}": new_card(a) for n, a in enumerate(addresses)})
    assert not made.get("notCreated")
    conditions = [{"email": email_phrase(a.lower())} for a in addresses]
    found = one(
        server,
        "ContactCard/query",
        {"filter": {"operator": "OR", "conditions": conditions}, "limit": 100},
    )
    assert set(found["ids"]) == {c["id"] for c in made["created"].values()}


# -- member keys ------------------------------------------------------------------------


def test_member_keys_are_stored_exactly_as_sent(server: ContactsServer) -> None:
    bare, urn = str(uuid.uuid4()), str(uuid.uuid4())
    group = create(server, g=new_group())["created"]["g"]["id"]
    patch = {f"members/{bare}": True, f"members/urn:uuid:{urn}": True}
    assert group in (one(server, "ContactCard/set", {"update": {group: patch}})["updated"] or {})
    assert card(server, group)["members"] == {bare: True, f"urn:uuid:{urn}": True}
    # The other spelling of the same uid is a second key ...
    one(server, "ContactCard/set", {"update": {group: {f"members/urn:uuid:{bare}": True}}})
    assert set(card(server, group)["members"]) == {bare, f"urn:uuid:{bare}", f"urn:uuid:{urn}"}
    # ... and a null for a spelling that is not there changes nothing.
    done = one(server, "ContactCard/set", {"update": {group: {f"members/{urn}": None}}})
    assert group in (done["updated"] or {})
    assert f"urn:uuid:{urn}" in card(server, group)["members"]


def test_a_group_made_without_members_has_an_empty_map(server: ContactsServer) -> None:
    made = create(server, g=new_card(kind="group", name={"@type": "Name", "full": "Bare"}))
    assert card(server, made["created"]["g"]["id"])["members"] == {}


# -- what a new card must carry -----------------------------------------------------------


@pytest.mark.parametrize(
    ("drop", "invalid"),
    [(("@type", "version"), {"@type", "version"}), (("version",), {"version"})],
)
def test_a_card_without_type_or_version_is_refused(
    server: ContactsServer, drop: tuple[str, ...], invalid: set[str]
) -> None:
    props = {k: v for k, v in new_card(unique("t")).items() if k not in drop}
    refused = create(server, c=props)["notCreated"]["c"]
    assert refused["type"] == "invalidProperties"
    assert set(refused["properties"]) == invalid


def test_a_sub_object_with_another_type_is_refused(server: ContactsServer) -> None:
    props = new_card(emails={"e": {"@type": "Bogus", "address": unique("x")}})
    refused = create(server, c=props)["notCreated"]["c"]
    assert (refused["type"], refused["properties"]) == ("invalidProperties", ["emails/e/@type"])
    # Leaving @type out of a sub-object is allowed.
    assert create(server, c=new_card(emails={"e": {"address": unique("y")}}))["created"]


# -- address books ----------------------------------------------------------------------------


def test_the_books_one_default_and_a_card_in_exactly_one(server: ContactsServer) -> None:
    books = one(server, "AddressBook/get", {"ids": None})["list"]
    defaults = [b for b in books if b["isDefault"]]
    assert len(defaults) == 1 and defaults[0]["myRights"]["mayWrite"] is True
    others = {b["id"]: True for b in books if not b["isDefault"]}
    two = {defaults[0]["id"]: True, **others}
    if len(two) > 1:
        refused = create(server, c=new_card(unique("two"), addressBookIds=two))["notCreated"]
        assert refused["c"]["properties"] == ["addressBookIds"]
    made = create(server, c=new_card(unique("nobook")))["created"]["c"]["id"]
    assert card(server, made)["addressBookIds"] == {defaults[0]["id"]: True}


def test_a_read_only_book_is_never_written(server: ContactsServer) -> None:
    card_id = server.read_only_card(unique("shared"))
    (book,) = card(server, card_id)["addressBookIds"]
    rights = {b["id"]: b["myRights"] for b in one(server, "AddressBook/get", {"ids": None})["list"]}
    assert rights[book]["mayWrite"] is False
    refused = create(server, c=new_card(unique("ro"), addressBookIds={book: True}))["notCreated"]
    assert refused["c"]["properties"] == ["addressBookIds"]
    answer = one(server, "ContactCard/set", {"update": {card_id: {"name": {"full": "X"}}}})
    assert answer["notUpdated"][card_id]["type"] == "accountReadOnly"
    # A group in a writable book may still name it as a member.
    group = create(server, g=new_group())["created"]["g"]["id"]
    member_uid = card(server, card_id)["uid"]
    joined = one(server, "ContactCard/set", {"update": {group: {f"members/{member_uid}": True}}})
    assert group in (joined["updated"] or {})


# -- one store, two protocols -------------------------------------------------------------------


def test_a_jmap_group_reaches_vcard_3_readers_with_every_member_prefixed(
    server: ContactsServer,
) -> None:
    bare, urn = str(uuid.uuid4()), str(uuid.uuid4())
    group = new_group(members={bare: True, f"urn:uuid:{urn}": True})
    create(server, g=group)
    v3 = dav_cards(server)[group["uid"]]
    assert "VERSION:3.0" in v3
    assert sorted(lines(v3, "X-ADDRESSBOOKSERVER-MEMBER")) == sorted(
        [f"urn:uuid:{bare}", f'urn:uuid:"urn:uuid:{urn}"']
    )
    assert [k.lower() for k in lines(v3, "X-ADDRESSBOOKSERVER-KIND")] == ["group"]
    v4 = dav_cards(server, "4.0")[group["uid"]]
    assert sorted(lines(v4, "MEMBER")) == sorted([bare, f"urn:uuid:{urn}"])


def test_an_apple_style_group_reaches_jmap_with_one_prefix_taken_off(
    server: ContactsServer,
) -> None:
    group_uid, member_uid = str(uuid.uuid4()).upper(), str(uuid.uuid4()).upper()
    dav_put(
        server,
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{group_uid}\r\nFN:Apple group\r\nN:Apple group;;;;\r\n"
        "X-ADDRESSBOOKSERVER-KIND:group\r\n"
        f"X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:{member_uid}\r\nEND:VCARD\r\n",
        group_uid,
    )
    found = one(server, "ContactCard/query", {"filter": {"kind": "group"}})["ids"]
    groups = one(server, "ContactCard/get", {"ids": found})["list"]
    (mine,) = [g for g in groups if g["uid"] == group_uid]
    assert mine["members"] == {member_uid: True}
    assert mine["kind"] == "group"


def test_the_carddav_search_finds_an_apostrophe_and_any_case(server: ContactsServer) -> None:
    address = unique("o'brien")
    made = create(server, c=new_card(address))["created"]["c"]["id"]
    uid = card(server, made)["uid"]
    for needle in (address, address.upper()):
        found = dav_query(
            server,
            "<d:getetag/><c:address-data/>",
            '<c:filter test="anyof"><c:prop-filter name="EMAIL">'
            '<c:text-match collation="i;unicode-casemap" match-type="contains">'
            f"{escape(needle)}</c:text-match></c:prop-filter></c:filter>",
        )
        assert uid in found


# -- limits ---------------------------------------------------------------------------------


def test_max_objects_in_set_holds_for_contact_cards(server: ContactsServer) -> None:
    limit = server.max_objects_in_set()
    ((method, answer, _),) = server.jmap(
        ["ContactCard/set", {"destroy": [f"nope{n}" for n in range(limit + 1)]}, "x"]
    )
    assert (method, answer["type"]) == ("error", "requestTooLarge")
