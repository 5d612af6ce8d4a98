"""@WholeList on both Cyrus builds: a list decided by label files its waiting
mail, a later post is filed by the rule (push), ``undo list:<id>`` puts it all
back; Cyrus's own header filter and ``header:List-Id:asText``."""

from __future__ import annotations

import uuid

from tests.integration.cyrus import Cyrus
from tests.integration.test_cyrus import _mailroom, start_mailroom
from tests.process import wait_until


def _boxes(cyrus: Cyrus, senders: list[str]) -> dict[str, set[str]]:
    mail = cyrus.mail_of(senders)
    return {s: set().union(*mail[s.lower()].values()) for s in senders}


def test_a_list_decided_by_label_then_taken_back(any_cyrus: Cyrus) -> None:
    cyrus = any_cyrus
    tag = uuid.uuid4().hex[:8]
    ident = f"users-{tag}.lists.example"
    posters = [f"{n}-{tag}@posters.example" for n in ("ann", "bob", "cat")]
    other = f"other-{tag}@posters.example"
    cyrus.ensure_mailbox("Screener")
    for poster in posters[:2]:
        cyrus.deliver(poster, "Poster", f"Post {tag}", list_id=f"Users <{ident}>")
    cyrus.deliver(other, "Other", f"Elsewhere {tag}", list_id=f"<{ident}.evil>")
    mail = cyrus.wait_for_mail_of([*posters[:2], other])
    env = {"MAILROOM_DEBOUNCE_SECONDS": "1", "MAILROOM_POLL_INTERVAL": "300"}
    with start_mailroom(cyrus, **env) as mr:
        assert wait_until(lambda: mr.push_state() == "connected", 60), mr.log
        (labelled,) = mail[posters[0].lower()]
        boxes = cyrus.mailboxes()
        patch = {f"mailboxIds/{boxes[name]}": True for name in ("@ToFeed", "@WholeList")}
        (resp,) = cyrus.jmap(
            ["Email/set", {"accountId": cyrus.account, "update": {labelled: patch}}, "s"]
        )
        assert labelled in (resp[1].get("updated") or {}), resp
        assert wait_until(
            lambda: _boxes(cyrus, posters[:2]) == {p: {"Feed"} for p in posters[:2]}, 60, 0.3
        ), mr.log
        cyrus.deliver(posters[2], "Poster", f"Later {tag}", list_id=f"<{ident.upper()}>")
        assert wait_until(lambda: _boxes(cyrus, [posters[2]]) == {posters[2]: {"Feed"}}, 60, 0.3), (
            mr.log
        )
        assert _boxes(cyrus, [other]) == {other: {"Screener"}}  # a lookalike list
    undo = _mailroom(cyrus, "undo", f"list:{ident}", "--apply")
    assert undo.returncode == 0, undo.stdout + undo.stderr
    assert _boxes(cyrus, posters) == {p: {"Screener"} for p in posters}
