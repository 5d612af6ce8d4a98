"""What an undo does to each email (pure): labels are never put back nor taken off."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailroom.ledger.model import Decision, DecisionKind, Effects, EmailMove, Intent, Outcome
from mailroom.takeback.plan import DELETED, MOVED, plan_undo

LABELS = frozenset({"@feed", "@jail", "@err", "@back"})
SCREENER, FEED, ARCHIVE = "screener", "feed", "archive"


def decision(*moves: EmailMove) -> Decision:
    intent = Intent("a@x.example", DecisionKind.TRIAGE, "Feed", "push")
    return Decision(1, 0.0, 1.0, intent, Outcome.DONE, effects=Effects(moves=moves))


def test_each_case() -> None:
    d = decision(
        EmailMove("labelled", frozenset({SCREENER, "@feed"}), frozenset({FEED})),
        EmailMove("plain", frozenset({SCREENER}), frozenset({FEED})),
        EmailMove("moved", frozenset({SCREENER}), frozenset({FEED})),
        EmailMove("gone", frozenset({SCREENER}), frozenset({FEED})),
        EmailMove("relabelled", frozenset({SCREENER}), frozenset({FEED})),
        EmailMove("back", frozenset({SCREENER}), frozenset({FEED})),
    )
    now = {
        "labelled": frozenset({FEED}),
        "plain": frozenset({FEED}),
        "moved": frozenset({ARCHIVE}),
        "relabelled": frozenset({FEED, "@jail", "@err"}),  # the user's since
        "back": frozenset({SCREENER, "@back"}),  # an undo run again
    }
    plan = plan_undo(d, now, LABELS)
    assert {e: m.after for e, m in plan.restore.items()} == {
        "labelled": frozenset({SCREENER}),  # its triage label is not put back
        "plain": frozenset({SCREENER}),
        "relabelled": frozenset({SCREENER, "@jail", "@err"}),  # kept
    }
    assert plan.left_alone == {"moved": MOVED, "gone": DELETED}


boxes = st.frozensets(st.sampled_from([SCREENER, FEED, ARCHIVE, *LABELS]), max_size=4)


@given(before=boxes, after=boxes, current=boxes)
def test_an_undo_never_adds_or_removes_a_label_nor_empties_an_email(
    before: frozenset[str], after: frozenset[str], current: frozenset[str]
) -> None:
    plan = plan_undo(decision(EmailMove("m", before, after)), {"m": current}, LABELS)
    for move in plan.restore.values():
        assert move.after & LABELS == current & LABELS
        assert move.after - LABELS  # never an email in labels alone, or in nothing


def test_a_move_cut_between_its_two_steps_is_mailroom_s_own_and_restored() -> None:
    """Killed after the new mailbox was added and before the old one was removed
    (the decision's own move, or an earlier undo's): in both, not moved by the user."""
    d = decision(
        EmailMove("forward", frozenset({SCREENER, "@feed"}), frozenset({FEED})),
        EmailMove("backward", frozenset({SCREENER}), frozenset({FEED})),
    )
    now = {"forward": frozenset({SCREENER, FEED, "@feed"}), "backward": frozenset({FEED, SCREENER})}
    plan = plan_undo(d, now, LABELS)
    assert plan.left_alone == {}
    assert {e: m.after for e, m in plan.restore.items()} == {
        "forward": frozenset({SCREENER, "@feed"}),  # the label stays: never taken off
        "backward": frozenset({SCREENER}),
    }


def test_a_move_the_server_applied_in_part_is_mailroom_s_own_and_restored() -> None:
    """A move into two mailboxes where the server filed one and refused the other
    (Cyrus 3.6 answers "updated" all the same): the read-back shows the email not
    in every new mailbox, so the old one is kept. Found by the soak: a re-triage
    from Imbox (Imbox and the Inbox) to Paper Trail, taken back while Imbox refused
    insertion, left the email in the Inbox and Paper Trail, and the next undo then
    called it "moved since" and left it there."""
    imbox, inbox, trail = "imbox", "inbox", "trail"
    d = decision(
        EmailMove("undo-cut", frozenset({imbox, inbox}), frozenset({trail})),
        EmailMove("forward-cut", frozenset({SCREENER}), frozenset({imbox, inbox})),
        EmailMove("user", frozenset({SCREENER}), frozenset({FEED})),
    )
    now = {
        "undo-cut": frozenset({inbox, trail}),  # the Inbox back, Imbox refused
        "forward-cut": frozenset({SCREENER, inbox}),  # the Inbox filed, Imbox refused
        "user": frozenset({FEED, ARCHIVE}),  # the user's: left alone
    }
    plan = plan_undo(d, now, LABELS)
    assert plan.left_alone == {"user": MOVED}
    assert {e: m.after for e, m in plan.restore.items()} == {
        "undo-cut": frozenset({imbox, inbox}),
        "forward-cut": frozenset({SCREENER}),
    }
