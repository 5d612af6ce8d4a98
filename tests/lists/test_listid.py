"""List ids read as RFC 2919 says, and hostile headers read as none (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailroom.lists.listid import MAX_ID, list_id, list_name, parse_subject, subject_of


def test_the_part_in_angle_brackets_case_insensitive() -> None:
    assert list_id("Mailroom users <Users.Mailroom.Example>") == "users.mailroom.example"
    assert list_id("<announce.example.org>") == "announce.example.org"
    assert list_id('"A <weird> phrase" <real.list.example>') == "real.list.example"
    assert list_id("  bare.list.example  ") == "bare.list.example"  # no brackets, still an id


def test_hostile_or_broken_headers_are_no_list() -> None:
    for bad in (
        None,
        42,
        "",
        "<>",
        "no dots here",
        "<nodot>",
        "<two..dots.example>",
        "<spaces in.list.example>",
        "<script>alert(1)</script>",
        "<a.example",
        "a.example>",
        "<" + "a." * 200 + "example>",  # longer than 255
        "x" * 10_000,
        "<ctl\x00.example>",
        "<\u202eevil.example>",
    ):
        assert list_id(bad) is None, bad


def test_subjects_name_lists_in_the_ledger() -> None:
    assert subject_of("users.mailroom.example") == "list:users.mailroom.example"
    assert parse_subject("list:<Users.Mailroom.Example>") == "users.mailroom.example"
    assert parse_subject("LIST:users.mailroom.example") == "users.mailroom.example"
    assert parse_subject("users.mailroom.example") is None
    assert parse_subject("list:not a list") is None


@given(st.text(max_size=600))
def test_any_header_gives_a_bounded_dot_atom_or_nothing(header: str) -> None:
    got = list_id(header)
    if got is not None:
        assert got == got.lower() and len(got) <= MAX_ID and "." in got
        assert all(c.isascii() and c.isprintable() and c not in ' <>"(),;:@[]\\' for c in got)


@given(
    st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){1,4}", fullmatch=True), st.text(max_size=40)
)
def test_an_id_survives_any_phrase_before_it(ident: str, phrase: str) -> None:
    clean = phrase.replace("<", "").replace(">", "")
    assert list_id(f"{clean} <{ident.upper()}>") == ident


def test_a_list_names_itself_before_its_id() -> None:
    assert list_name("Mailroom users <users.mailroom.example>") == "Mailroom users"
    assert list_name('"Users, \\"all\\"" <users.mailroom.example>') == 'Users, "all"'
    assert list_name("<users.mailroom.example>") == ""
    assert list_name("users.mailroom.example") == ""
    assert list_name(None) == "" and list_name("x" * 5000 + "<a.b>") == ""
