"""``mailroom triage list:<id> CATEGORY``, ``undo list:<id>`` and ``reset`` of
lists on the stand-in: the account back to exactly before."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mailroom.commands.triage import run_triage
from mailroom.commands.undo import run_reset, run_undo, subject_problem
from mailroom.settings import load_settings
from tests.conftest import Harness

pytestmark = pytest.mark.anyio
USERS = [("List-Id", "Mailroom users <users.list.example>")]


def settings(h: Harness, state: Path):  # type: ignore[no-untyped-def]
    return load_settings(
        {
            **h.sandbox.env(h.backend.value),
            "MAILROOM_CONTACTS": h.backend.value,
            "MAILROOM_STATE_DIR": str(state),
        }
    )


def test_list_subjects_are_understood() -> None:
    assert subject_problem("list:users.list.example") is None
    assert subject_problem("list:<Users.List.Example>") is None
    assert "not a mailing list" in (subject_problem("list:nothing") or "")


async def test_a_list_decided_undone_and_reset_from_the_command_line(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    posts = [h.mail.deliver(s, headers=USERS) for s in ("a@x.com", "b@y.org")]
    out, err = io.StringIO(), io.StringIO()
    s = settings(h, tmp_path)
    assert (
        await run_triage(s, "list:<users.list.example>", "Feed", apply=False, out=out, err=err) == 0
    )
    assert "2 emails of it waiting in the Screener" in out.getvalue()
    assert all(h.mail.mailbox_names(p) == {"Screener"} for p in posts)
    code = await run_triage(s, "list:users.list.example", "Feed", apply=True, out=out, err=err)
    assert code == 0, err.getvalue()
    assert all(h.mail.mailbox_names(p) == {"Feed"} for p in posts)
    out = io.StringIO()
    assert await run_undo(s, "LIST:users.list.example", apply=True, out=out, err=err) == 0
    assert "done: 2 emails back" in out.getvalue()
    assert all(h.mail.mailbox_names(p) == {"Screener"} for p in posts)
    # Decided again, then reset: back again, and nothing left standing.
    await run_triage(s, "list:users.list.example", "Jail", apply=True, out=out, err=err)
    assert all(h.mail.mailbox_names(p) == {"Jail"} for p in posts)
    assert await run_reset(s, apply=True, out=io.StringIO(), err=err) == 0, err.getvalue()
    assert all(h.mail.mailbox_names(p) == {"Screener"} for p in posts)


async def test_a_refused_list_decision_says_so_and_the_same_command_finishes_it(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    posts = [h.mail.deliver(s, headers=USERS) for s in ("a@x.com", "b@y.org")]
    h.mail.refuse_updates.add(posts[1])
    s = settings(h, tmp_path)
    out, err = io.StringIO(), io.StringIO()
    code = await run_triage(s, "list:users.list.example", "Feed", apply=True, out=out, err=err)
    assert code == 1
    assert "list:users.list.example not finished: 1 email could not be filed" in err.getvalue()
    assert "(1 email filed)" in err.getvalue() and "mailroom undo list:" in err.getvalue()
    assert h.mail.mailbox_names(posts[0]) == {"Feed"}
    h.mail.refuse_updates.clear()
    code = await run_triage(s, "list:users.list.example", "Feed", apply=True, out=out, err=err)
    assert code == 0, err.getvalue()
    assert all(h.mail.mailbox_names(p) == {"Feed"} for p in posts)
    out = io.StringIO()
    assert await run_undo(s, "list:users.list.example", apply=True, out=out, err=err) == 0
    assert "done: 2 emails back" in out.getvalue()  # one record, both attempts in it
    assert all(h.mail.mailbox_names(p) == {"Screener"} for p in posts)
