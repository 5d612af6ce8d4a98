"""The account's own addresses and where each was learned (pure), and the
setting that adds some."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailroom.account.own import IDENTITY, SENT, SETTING, USERNAME, address, learn
from mailroom.settings import SettingsError, load_settings
from tests.test_settings import BASE


def test_every_source_counts_and_is_named() -> None:
    own = learn(
        "me@example.org",
        [{"email": "Me@Example.org"}, {"email": "*@example.org"}, {"email": None}, "junk"],
        [
            {"from": [{"email": "alias@example.net", "name": "Me"}]},
            {"from": [{"email": "me@example.org"}]},
            {"from": "not a list"},
            {},
        ],
        ["extra@example.com"],
    )
    assert own.sources == {
        "me@example.org": (USERNAME, IDENTITY, SENT),
        "alias@example.net": (SENT,),
        "extra@example.com": (SETTING,),
    }
    assert own.all == {"me@example.org", "alias@example.net", "extra@example.com"}
    assert own.lines()[0] == "alias@example.net (from your Sent mail)"


def test_a_username_without_a_domain_names_nobody_but_sent_mail_does() -> None:
    # Cyrus 3.6: the username is "testuser", identities carry no address.
    own = learn("testuser", [], [{"from": [{"email": "testuser@localhost"}]}])
    assert own.all == {"testuser@localhost"}


@given(st.text(max_size=400))
def test_anything_a_server_sends_is_an_address_or_nothing(value: str) -> None:
    got = address(value)
    assert got is None or (
        "@" in got and got == got.strip().lower() and len(got) <= 320 and "*" not in got
    )


def test_the_setting_takes_addresses_only() -> None:
    settings = load_settings({**BASE, "MAILROOM_OWN_ADDRESSES": " Me@Example.org, b@c.d ,"})
    assert settings.own_addresses == ("me@example.org", "b@c.d")
    with pytest.raises(SettingsError) as info:
        load_settings({**BASE, "MAILROOM_OWN_ADDRESSES": "me@example.org, not-an-address"})
    (problem,) = info.value.problems
    assert problem.startswith("MAILROOM_OWN_ADDRESSES: expected email addresses")
    assert "not-an-address" in problem
