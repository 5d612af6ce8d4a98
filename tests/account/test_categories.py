"""Category configuration: defaults, chains and every rejection."""

from __future__ import annotations

import json

import pytest

from mailroom.account.categories import (
    DEFAULT_CATEGORIES_JSON,
    CategoryError,
    parse_categories,
)


def test_default_categories() -> None:
    cats = parse_categories(DEFAULT_CATEGORIES_JSON)
    person = cats.by_name("Person")
    assert person.label == "@ToPerson"
    assert person.contact_type == "person"
    assert person.add_to_inbox  # inherited from Imbox
    assert [c.name for c in cats.chain(person)] == ["Person", "Imbox"]
    feed = cats.by_name("Feed")
    assert (feed.contact_group, feed.destination, feed.add_to_inbox) == ("Feed", "Feed", False)
    assert feed.contact_type == "company"
    assert cats.by_name("Paper Trail").label == "@ToPaperTrail"


def test_names_as_strings_and_explicit_fields() -> None:
    cats = parse_categories(
        json.dumps(
            [
                "Newsletters",
                {
                    "name": "VIP",
                    "label": "#vip",
                    "contact_group": "Very Important",
                    "destination": "Priority",
                    "add_to_inbox": True,
                    "contact_type": "person",
                },
            ]
        )
    )
    vip = cats.by_label("#vip")
    assert (vip.contact_group, vip.destination, vip.add_to_inbox) == (
        "Very Important",
        "Priority",
        True,
    )
    assert cats.by_name("Newsletters").label == "@ToNewsletters"


def test_child_can_opt_out_of_inbox() -> None:
    cats = parse_categories(
        '[{"name":"Imbox","add_to_inbox":true},'
        '{"name":"Quiet","parent":"Imbox","add_to_inbox":false}]'
    )
    assert not cats.by_name("Quiet").add_to_inbox


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ([{"name": "A"}, {"name": "A"}], ["duplicate category name 'A'"]),
        ([{"name": "A", "label": "@x"}, {"name": "B", "label": "@x"}], ["duplicate label '@x'"]),
        (
            [{"name": "A", "contact_group": "G"}, {"name": "B", "contact_group": "G"}],
            ["duplicate contact group 'G'"],
        ),
        ([{"name": "A", "parent": "Z"}], ["category 'A': unknown parent 'Z'"]),
        (
            [{"name": "A", "parent": "B"}, {"name": "B", "parent": "A"}],
            ["parent cycle: A -> B -> A"],
        ),
        ([{"name": "A", "parent": "A"}], ["parent cycle: A -> A"]),
        (
            [{"name": "A", "destination": "INBOX"}],
            ["category 'A': destination cannot be Inbox (use add_to_inbox)"],
        ),
        ([{"name": ""}], ["category 1: 'name' must be a non-empty string"]),
        ([42], ["category 1: expected an object or a name, got int"]),
        (
            [{"name": "A", "add_to_inbox": "yes"}],
            ["category 'A': 'add_to_inbox' must be true or false"],
        ),
        (
            [{"name": "A", "contact_type": "robot"}],
            ["category 'A': 'contact_type' must be 'person' or 'company'"],
        ),
        ([{"name": "A", "colour": "red"}], ["category 1: unknown key(s) colour"]),
    ],
)
def test_rejections(spec: list[object], expected: list[str]) -> None:
    with pytest.raises(CategoryError) as info:
        parse_categories(json.dumps(spec))
    assert info.value.problems == expected
