"""Re-filing emails so that none is ever lost: add, read back, then remove (pure).

A server may answer an ``Email/set`` as ``updated`` without doing it: Cyrus 3.6,
asked to file an email into a mailbox the account may not insert into, says
``updated`` and adds nothing, and when the same patch also removes the email's
mailbox the email is gone from every mailbox. So a move is two steps: the new
mailboxes are added (and read back in the same request), and an email leaves
its old mailboxes only once the server shows it in every new one. An email the
server did not file is left where it was, and named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PREFIX = "mailboxIds/"
NOT_FILED = "notFiled"  # the SetError type Mailroom gives an add the server did not keep


@dataclass(frozen=True)
class MovePlan:
    """``patches`` split: what to add first, what to remove once the adds are seen."""

    adds: dict[str, dict[str, Any]] = field(default_factory=dict)  # email -> patch
    removes: dict[str, dict[str, Any]] = field(default_factory=dict)  # email -> patch
    expect: dict[str, frozenset[str]] = field(default_factory=dict)  # email -> added ids


def split(patches: Mapping[str, Mapping[str, Any]]) -> MovePlan:
    """Each patch (``mailboxIds/<id>: true | null``) as its adds and its removes;
    any other path goes with the adds (it removes nothing)."""
    plan = MovePlan()
    for email, patch in patches.items():
        adds = {k: v for k, v in patch.items() if not (k.startswith(PREFIX) and v is None)}
        removes = {k: v for k, v in patch.items() if k.startswith(PREFIX) and v is None}
        if adds:
            plan.adds[email] = adds
            plan.expect[email] = frozenset(
                k.removeprefix(PREFIX) for k, v in adds.items() if k.startswith(PREFIX) and v
            )
        if removes:
            plan.removes[email] = removes
    return plan


def confirmed(
    plan: MovePlan,
    refused: Mapping[str, Mapping[str, Any]],
    seen: Mapping[str, frozenset[str]],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The removes safe to send now, and the emails whose adds did not land.

    ``refused``: the add step's failures (the server said so); ``seen``: each
    added email's mailboxes as read back right after (an email missing was
    deleted meanwhile: nothing to remove, nothing lost).
    """
    safe: dict[str, dict[str, Any]] = {}
    failed: dict[str, dict[str, Any]] = {}
    for email, patch in plan.removes.items():
        if email not in plan.adds:
            safe[email] = dict(patch)
            continue
        if email in refused:
            continue  # already a failure, with the server's own reason
        now = seen.get(email)
        if now is None:
            failed[email] = {"type": "notFound"}
            continue
        missing = plan.expect[email] - now
        if missing:
            failed[email] = _not_filed(missing)
            continue
        safe[email] = dict(patch)
    for email in plan.adds:
        if email in refused or email in plan.removes:
            continue
        now = seen.get(email)
        if now is not None and plan.expect[email] - now:
            failed[email] = _not_filed(plan.expect[email] - now)
    return safe, failed


def _not_filed(missing: frozenset[str]) -> dict[str, Any]:
    return {
        "type": NOT_FILED,
        "description": (
            "the server answered 'updated' but does not show the email in "
            f"{', '.join(sorted(missing))}; it was left where it was "
            "(may the account file mail there?)"
        ),
        "mailboxIds": sorted(missing),
    }
