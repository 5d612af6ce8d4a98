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


def test_a_list_rule_and_a_senders_own_decision_both_stand(any_cyrus: Cyrus) -> None:
    """Ann posts to a decided list and writes to the user directly: her own
    decision files her direct mail and leaves her posts to the list; reset takes
    both kinds back to exactly before."""
    import asyncio

    from tests.integration.test_cyrus import groups_of

    cyrus = any_cyrus
    tag = uuid.uuid4().hex[:8]
    ident = f"team-{tag}.lists.example"
    ann = f"ann-{tag}@posters.example"
    cyrus.ensure_mailbox("Screener")
    cyrus.deliver(ann, "Ann", f"Post {tag}", list_id=f"Team <{ident}>")
    (post,) = cyrus.wait_for_mail(ann, 1)
    cyrus.deliver(ann, "Ann", f"Just to you {tag}")
    (direct,) = set(cyrus.wait_for_mail(ann, 2)) - {post}
    env = {"MAILROOM_DEBOUNCE_SECONDS": "1", "MAILROOM_POLL_INTERVAL": "300"}
    with start_mailroom(cyrus, **env) as mr:
        assert wait_until(lambda: mr.push_state() == "connected", 60), mr.log
        boxes = cyrus.mailboxes()
        patch = {f"mailboxIds/{boxes[name]}": True for name in ("@ToFeed", "@WholeList")}
        cyrus.jmap(["Email/set", {"accountId": cyrus.account, "update": {post: patch}}, "s"])
        assert wait_until(lambda: cyrus.emails_from(ann)[post] == {"Feed"}, 60, 0.3), mr.log
        cyrus.deliver(ann, "Ann", f"Later {tag}", list_id=f"<{ident}>")
        (later,) = set(cyrus.wait_for_mail(ann, 3)) - {post, direct}
        assert wait_until(lambda: cyrus.emails_from(ann)[later] == {"Feed"}, 60, 0.3), mr.log
        cyrus.label(direct, "@ToImbox")
        assert wait_until(lambda: cyrus.emails_from(ann)[direct] == {"Imbox", "Inbox"}, 60, 0.3), (
            mr.log
        )
        mail = cyrus.emails_from(ann)
        assert mail[post] == mail[later] == {"Feed"}  # inside the list, the list's decision
        assert asyncio.run(groups_of(cyrus, ann)) == {"Imbox"}
    reset = _mailroom(cyrus, "reset", "--apply")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert cyrus.emails_from(ann) == {e: {"Screener"} for e in (post, direct, later)}
    assert asyncio.run(groups_of(cyrus, ann)) == set()
