"""Moves that never lose an email: the pure split and check (``jmap/moves.py``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailroom.jmap import moves
from mailroom.triage.refile import patch_for

BOXES = st.frozensets(st.sampled_from(["screener", "feed", "inbox", "label", "jail"]), min_size=1)


def test_a_patch_is_split_into_its_adds_and_its_removes() -> None:
    plan = moves.split({"e1": patch_for(frozenset({"screener", "label"}), frozenset({"feed"}))})
    assert plan.adds == {"e1": {"mailboxIds/feed": True}}
    assert plan.removes == {"e1": {"mailboxIds/label": None, "mailboxIds/screener": None}}
    assert plan.expect == {"e1": frozenset({"feed"})}


def test_an_add_the_server_did_not_keep_removes_nothing() -> None:
    plan = moves.split({"e1": patch_for(frozenset({"screener"}), frozenset({"feed"}))})
    safe, failed = moves.confirmed(plan, {}, {"e1": frozenset({"screener"})})
    assert safe == {}
    assert failed["e1"]["type"] == moves.NOT_FILED and "feed" in failed["e1"]["description"]


def test_an_email_deleted_meanwhile_is_not_found_and_nothing_is_sent() -> None:
    plan = moves.split({"e1": patch_for(frozenset({"screener"}), frozenset({"feed"}))})
    safe, failed = moves.confirmed(plan, {}, {})
    assert safe == {} and failed == {"e1": {"type": "notFound"}}


@given(st.dictionaries(st.sampled_from(["e1", "e2", "e3"]), st.tuples(BOXES, BOXES)), st.data())
def test_nothing_leaves_a_mailbox_before_the_server_shows_it_where_it_goes(
    moves_wanted: dict[str, tuple[frozenset[str], frozenset[str]]], data: st.DataObject
) -> None:
    patches = {e: patch_for(before, after) for e, (before, after) in moves_wanted.items()}
    patches = {e: p for e, p in patches.items() if p}
    plan = moves.split(patches)
    # Whatever the server did with the adds: kept some, dropped some, lost the email.
    seen = {
        e: data.draw(st.frozensets(st.sampled_from(sorted(plan.expect[e] | {"screener"}))))
        for e in plan.adds
        if data.draw(st.booleans())
    }
    refused = {e: {"type": "forbidden"} for e in plan.adds if data.draw(st.booleans())}
    safe, failed = moves.confirmed(plan, refused, seen)
    for email in safe:
        if email in plan.adds:
            assert email not in refused and plan.expect[email] <= seen[email]
    # Every email ends safe to finish, or named as failed, or refused by the server.
    for email in patches:
        finished = email in safe or (email in plan.adds and email not in plan.removes)
        assert finished or email in failed or email in refused
    # Whatever is removed is exactly what the patch removed, nothing more.
    for email, patch in safe.items():
        assert patch == plan.removes[email]
