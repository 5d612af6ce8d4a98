"""``mailroom screener``: who is waiting, newest first, whatever the server sends."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailroom.commands.screener import Waiting, render, run_screener, waiting
from mailroom.settings import load_settings
from tests.faults import FaultySandbox

pytestmark = pytest.mark.anyio


def email(sender: str, when: str, subject: str = "s", name: str = "") -> dict[str, Any]:
    return {"from": [{"email": sender, "name": name}], "receivedAt": when, "subject": subject}


def test_each_sender_once_newest_first() -> None:
    got = waiting(
        [
            email("a@x.example", "2026-11-01T10:00:00Z", "old", "Ann"),
            email("b@x.example", "2026-11-03T10:00:00Z", "only"),
            email("A@X.example", "2026-11-04T09:00:00Z", "newest", ""),
            email("a@x.example", "2026-11-02T10:00:00Z", "middle", "Ann B."),
        ]
    )
    assert [w.sender for w in got] == ["a@x.example", "b@x.example"]
    ann = got[0]
    assert (ann.emails, ann.newest_subject, ann.name) == (3, "newest", "Ann B.")
    assert ann.oldest.startswith("2026-11-01") and ann.newest.startswith("2026-11-04")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["from", "receivedAt", "subject"]),
            st.none()
            | st.text(max_size=30)
            | st.integers()
            | st.lists(st.dictionaries(st.sampled_from(["email", "name"]), st.text(max_size=20))),
        ),
        max_size=20,
    )
)
def test_any_answer_is_summarised_without_raising(emails: list[dict[str, Any]]) -> None:
    got = waiting(emails)
    assert sum(w.emails for w in got) <= len(emails)
    assert len({w.sender for w in got}) == len(got)
    render(got)


def test_rendering() -> None:
    text = render(
        [
            Waiting(
                "a@x.example",
                "Ann",
                2,
                "Hello",
                "2026-11-04T09:00:00+0000",
                "2026-11-01T10:00:00+0000",
            )
        ]
    )
    assert (
        text == "2026-11-04 09:00 +0000  Ann <a@x.example>  2 emails, first 2026-11-01  “Hello”\n"
    )
    assert render([]) == "nobody is waiting in the Screener\n"


async def test_the_command_reads_the_account() -> None:
    with FaultySandbox(flavour="rfc", jmap_contacts=True) as sb:
        sb.mail.ensure_mailbox("Screener")
        sb.mail.deliver("early@x.example", name="Early", subject="first")
        sb.mail.deliver("late@x.example", subject="hello there")
        sb.mail.deliver("early@x.example", name="Early", subject="second")
        sb.mail.deliver("done@x.example", mailboxes=["Feed"])  # not waiting
        out, err = io.StringIO(), io.StringIO()
        code = await run_screener(load_settings(sb.env("jmap")), out, err, as_json=True)
        assert code == 0, err.getvalue()
        got = json.loads(out.getvalue())
        assert [(w["sender"], w["emails"], w["newest_subject"]) for w in got] == [
            ("early@x.example", 2, "second"),
            ("late@x.example", 1, "hello there"),
        ]
        assert got[0]["name"] == "Early"
        env = {**sb.env("jmap"), "MAILROOM_SCREENER_MAILBOX": "Nowhere"}
        code = await run_screener(load_settings(env), out, err, as_json=False)
        assert code == 2 and "no mailbox named 'Nowhere'" in err.getvalue()
        env = {**sb.env("jmap"), "MAILROOM_JMAP_TOKEN": "wrong"}
        code = await run_screener(load_settings(env), out, err, as_json=False)
        assert code == 1 and "401" in err.getvalue() and "wrong" not in err.getvalue()
