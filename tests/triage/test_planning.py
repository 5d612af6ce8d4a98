"""Pure triage decisions, tested with plain data."""

from __future__ import annotations

import pytest

from mailroom.account.categories import DEFAULT_CATEGORIES_JSON, parse_categories
from mailroom.account.mailboxes import MailboxMap, resolve_mailboxes
from mailroom.triage.refile import (
    patch_for,
    plan_groups,
    plan_label_removal,
    plan_refile,
    target_mailboxes,
)
from mailroom.triage.scan import plan_scan

CATS = parse_categories(DEFAULT_CATEGORIES_JSON)
BOXES = MailboxMap(
    inbox="inbox",
    screener="scr",
    error_label="err",
    labels={c.name: "L-" + c.name for c in CATS},
    destinations={d: "D-" + d for d in CATS.destinations},
    excluded=frozenset({"trash", "junk"}),
)


def email(eid: str, sender: str | None, *boxes: str, name: str = "") -> dict[str, object]:
    return {
        "id": eid,
        "from": None if sender is None else [{"email": sender, "name": name}],
        "mailboxIds": dict.fromkeys(boxes, True),
    }


def test_scan_groups_by_lowercased_sender() -> None:
    plan = plan_scan(
        [
            email("1", "News@Acme.com", "scr", "L-Feed", name="Acme"),
            email("2", "news@acme.com", "scr", "L-Feed"),
        ],
        BOXES,
        CATS,
    )
    work = plan.senders["news@acme.com"]
    assert work.category.name == "Feed"
    assert work.display_name == "Acme"
    assert set(work.emails) == {"1", "2"}
    assert not plan.conflicts


def test_scan_conflict_and_error_label_and_unreadable() -> None:
    plan = plan_scan(
        [
            email("1", "a@x.com", "scr", "L-Feed"),
            email("2", "a@x.com", "scr", "L-Jail"),
            email("3", "b@x.com", "scr", "L-Feed", "err"),
            email("4", None, "scr", "L-Feed"),
            email("5", "c@x.com", "scr", "L-Imbox", "L-Jail"),
        ],
        BOXES,
        CATS,
    )
    assert plan.conflicts == {"a@x.com": ["1", "2"], "c@x.com": ["5"]}
    assert plan.senders == {}
    assert plan.skipped == 1
    assert plan.unreadable == ["4"]


def test_groups_new_contact_joins_chain_root_first() -> None:
    plan = plan_groups(set(), CATS.by_name("Person"), CATS)
    assert plan.add == ("Imbox", "Person")
    assert plan.remove == ()


def test_groups_retriage_person_to_feed_leaves_whole_old_chain() -> None:
    plan = plan_groups({"Person", "Imbox", "Friends"}, CATS.by_name("Feed"), CATS)
    assert plan.add == ("Feed",)
    assert plan.remove == ("Imbox", "Person")  # "Friends" is the user's, untouched


def test_groups_already_right_means_nothing_to_do() -> None:
    plan = plan_groups({"Person", "Imbox"}, CATS.by_name("Person"), CATS)
    assert (plan.add, plan.remove) == ((), ())


def test_target_person_from_screener() -> None:
    got = target_mailboxes(frozenset({"scr", "L-Person"}), CATS.by_name("Person"), CATS, BOXES)
    assert got == {"L-Person", "D-Person", "D-Imbox", "inbox"}


def test_target_inbox_only_for_mail_that_was_in_screener() -> None:
    got = target_mailboxes(frozenset({"archive"}), CATS.by_name("Imbox"), CATS, BOXES)
    assert got == {"archive", "D-Imbox"}


def test_leaving_an_inbox_category_leaves_the_inbox() -> None:
    # Person -> Feed: out of Person, Imbox and the Inbox they kept it in.
    got = target_mailboxes(
        frozenset({"D-Person", "D-Imbox", "inbox"}), CATS.by_name("Feed"), CATS, BOXES
    )
    assert got == {"D-Feed"}
    # Person -> Imbox: still an inbox category, the Inbox stays.
    got = target_mailboxes(
        frozenset({"D-Person", "D-Imbox", "inbox"}), CATS.by_name("Imbox"), CATS, BOXES
    )
    assert got == {"D-Imbox", "inbox"}
    # In the Inbox for another reason (no old category's mailbox): it stays.
    got = target_mailboxes(frozenset({"inbox"}), CATS.by_name("Feed"), CATS, BOXES)
    assert got == {"D-Feed", "inbox"}
    # Feed -> Jail: Feed never added the Inbox, so one the user added stays.
    got = target_mailboxes(frozenset({"D-Feed", "inbox"}), CATS.by_name("Jail"), CATS, BOXES)
    assert got == {"D-Jail", "inbox"}


def test_refile_skips_trash_junk_and_already_filed() -> None:
    patches = plan_refile(
        {
            "1": frozenset({"scr"}),
            "2": frozenset({"trash"}),
            "3": frozenset({"D-Feed"}),
            "4": frozenset({"junk", "scr"}),
        },
        CATS.by_name("Feed"),
        CATS,
        BOXES,
    )
    assert patches == {"1": {"mailboxIds/D-Feed": True, "mailboxIds/scr": None}}


def test_label_removal_never_leaves_zero_mailboxes() -> None:
    cat = CATS.by_name("Feed")
    patches = plan_label_removal(
        {"1": frozenset({"L-Feed", "D-Feed"}), "2": frozenset({"L-Feed"}), "3": frozenset({"x"})},
        cat,
        CATS,
        BOXES,
    )
    assert patches == {
        "1": {"mailboxIds/L-Feed": None},
        "2": {"mailboxIds/D-Feed": True, "mailboxIds/L-Feed": None},
    }


def test_patch_refuses_empty_target() -> None:
    with pytest.raises(ValueError, match="no mailbox"):
        patch_for(frozenset({"a"}), frozenset())


def test_resolve_prefers_top_level_and_finds_roles() -> None:
    res = resolve_mailboxes(
        [
            {"id": "n", "name": "Feed", "parentId": "p", "role": None},
            {"id": "t", "name": "Feed", "parentId": None, "role": None},
            {"id": "i", "name": "INBOX", "parentId": None, "role": "inbox"},
            {"id": "tr", "name": "Bin", "parentId": None, "role": "trash"},
            {"id": "j", "name": "Spam", "parentId": None, "role": "junk"},
        ],
        ["Feed", "Screener"],
    )
    assert res.found == {"Feed": "t"}
    assert res.missing == ("Screener",)
    assert res.inbox == "i"
    assert res.excluded == {"tr", "j"}
