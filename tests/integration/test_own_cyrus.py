"""Who "you" are on Cyrus: its identities carry no address and its username no
domain, so the From of the user's own Sent mail tells Mailroom who the user is.
A note to self labelled ``@ToImbox`` gets the error label, never a group."""

from __future__ import annotations

import asyncio
import uuid

from tests.integration.cyrus import Cyrus
from tests.integration.test_cyrus import _mailroom, contact_uid, start_mailroom
from tests.process import wait_until


def _sent_mailbox(cyrus: Cyrus) -> str:
    """The name of the mailbox with role "sent", made (or marked) if there is none."""
    (resp,) = cyrus.jmap(
        ["Mailbox/get", {"accountId": cyrus.account, "properties": ["name", "role"]}, "m"]
    )
    boxes = resp[1]["list"]
    for box in boxes:
        if box.get("role") == "sent":
            return str(box["name"])
    named = {b["name"]: b["id"] for b in boxes}
    if "Sent" in named:
        change = {"update": {named["Sent"]: {"role": "sent"}}}
    else:
        change = {"create": {"s": {"name": "Sent", "role": "sent"}}}
    (resp,) = cyrus.jmap(["Mailbox/set", {"accountId": cyrus.account, **change}, "s"])
    assert resp[1].get("updated") or resp[1].get("created"), resp
    return "Sent"


def _note(cyrus: Cyrus, sender: str, subject: str) -> str:
    (_, got) = cyrus.jmap(
        [
            "Email/query",
            {"accountId": cyrus.account, "filter": {"from": sender, "subject": subject}},
            "q",
        ],
        [
            "Email/get",
            {
                "accountId": cyrus.account,
                "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                "properties": ["mailboxIds"],
            },
            "g",
        ],
    )
    (email,) = got[1]["list"]
    return str(email["id"])


def test_a_note_to_self_is_never_triaged(cyrus: Cyrus) -> None:
    me = f"{cyrus.env['CYRUS_USER']}@localhost"
    cyrus.ensure_mailbox("Screener")
    sent = _sent_mailbox(cyrus)
    cyrus.append(me, "Me", "To a friend", sent)
    subject = f"Note to self {uuid.uuid4().hex[:8]}"
    cyrus.deliver(me, "Me", subject)
    check = _mailroom(cyrus, "check")
    assert f"{me} (from your Sent mail)" in check.stdout, check.stdout + check.stderr
    with start_mailroom(cyrus, MAILROOM_POLL_INTERVAL="300", MAILROOM_DEBOUNCE_SECONDS="1") as mr:
        assert wait_until(lambda: mr.push_state() == "connected", 60), mr.log
        note = _note(cyrus, me, subject)
        cyrus.label(note, "@ToImbox")
        assert wait_until(
            lambda: "@MailroomError" in cyrus.emails_from(me).get(note, set()), 30, step=0.2
        ), mr.log
        assert cyrus.emails_from(me)[note] >= {"Screener", "@ToImbox"}
    assert asyncio.run(contact_uid(cyrus, me)) is None
