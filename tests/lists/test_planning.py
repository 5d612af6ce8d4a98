"""@WholeList in a pass's plan (pure): a list decision from a labelled email
with a List-Id; the error label, with why, for one without."""

from __future__ import annotations

from typing import Any

from mailroom.account.categories import DEFAULT_CATEGORIES_JSON, parse_categories
from mailroom.account.mailboxes import MailboxMap
from mailroom.lists.listid import LIST_ID
from mailroom.triage.scan import plan_scan

CATEGORIES = parse_categories(DEFAULT_CATEGORIES_JSON)
BOXES = MailboxMap(
    inbox="inbox",
    screener="scr",
    error_label="err",
    labels={"Feed": "lfeed", "Imbox": "limbox"},
    destinations={"Feed": "feed", "Imbox": "imbox"},
    excluded=frozenset(),
    list_label="llist",
)


def email(eid: str, boxes: set[str], list_header: str | None, sender: str = "a@x.com") -> Any:
    return {
        "id": eid,
        "from": [{"email": sender}],
        "mailboxIds": dict.fromkeys(boxes, True),
        LIST_ID: list_header,
    }


def test_a_list_decision_and_the_emails_that_cannot_be_one() -> None:
    plan = plan_scan(
        [
            email("e1", {"scr", "lfeed", "llist"}, "Users <users.list.example>"),
            email("e2", {"scr", "lfeed", "llist"}, "<USERS.list.example>", "b@y.org"),
            email("e3", {"scr", "lfeed", "llist"}, None),
            email("e4", {"scr", "lfeed", "limbox", "llist"}, "<two.list.example>"),
            email("e5", {"scr", "lfeed"}, "<ignored.list.example>", "c@z.net"),
        ],
        BOXES,
        CATEGORIES,
    )
    (work,) = plan.lists.values()
    assert (work.list_id, work.category.name, sorted(work.emails)) == (
        "users.list.example",
        "Feed",
        ["e1", "e2"],
    )
    assert "no List-Id" in plan.no_list["e3"] and "one triage label" in plan.no_list["e4"]
    assert list(plan.senders) == ["c@z.net"]  # without @WholeList: a sender's decision


def test_one_list_labelled_for_two_categories_is_flagged_whole() -> None:
    plan = plan_scan(
        [
            email("e1", {"scr", "lfeed", "llist"}, "<users.list.example>"),
            email("e2", {"scr", "limbox", "llist"}, "<users.list.example>", "b@y.org"),
        ],
        BOXES,
        CATEGORIES,
    )
    assert set(plan.no_list) == {"e1", "e2"}
    assert all(not w.emails for w in plan.lists.values())
