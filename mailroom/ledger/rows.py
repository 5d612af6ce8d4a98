"""Decisions as rows of the ledger and back (pure): the JSON columns, the
emails of a decision grouped by move, and a retried plan merged with the first."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from mailroom.ledger.model import Decision, DecisionKind, Effects, EmailMove, Intent, Outcome


def merge(earlier: Effects | None, now: Effects) -> Effects:
    """A plan made again over one an interrupted pass had begun to carry out."""
    if earlier is None:
        return now
    first = {m.email: m for m in earlier.moves}
    moves = {m.email: m for m in earlier.moves}
    for m in now.moves:
        was = first.get(m.email)
        moves[m.email] = m if was is None else EmailMove(m.email, was.before, m.after)
    return Effects(
        previous=earlier.previous or now.previous,
        contact_id=earlier.contact_id or now.contact_id,
        contact_uid=earlier.contact_uid or now.contact_uid,
        contact_created=earlier.contact_created or now.contact_created,
        contact_name=earlier.contact_name if earlier.contact_created else now.contact_name,
        contact_kind=earlier.contact_kind if earlier.contact_created else now.contact_kind,
        filled=tuple(dict.fromkeys((*earlier.filled, *now.filled))),
        joined=tuple(dict.fromkeys((*earlier.joined, *now.joined))),
        left=tuple(dict.fromkeys((*earlier.left, *now.left))),
        moves=tuple(moves[e] for e in sorted(moves)),
    )


def intent_row(intent: Intent) -> tuple[object, ...]:
    return (
        intent.subject,
        intent.kind.value,
        intent.category,
        intent.trigger,
        intent.label_email,
        intent.undoes,
        intent.rule,
    )


def like_pattern(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def json_list(items: Iterable[str]) -> str:
    """A JSON array of strings; thousands per pass, so straight to the C string encoder."""
    return "[" + ",".join(map(_quote, items)) + "]"


_quote = json.encoder.encode_basestring


def moves_text(moves: Iterable[EmailMove]) -> str:
    """A decision's emails as one JSON array of [before, after, [emails]], grouped
    by where they were and where they went (a sender's mail mostly moves
    together: thousands of emails per pass become a few hundred groups, built
    with the C string encoder as ``json_list``)."""
    groups: dict[tuple[frozenset[str], frozenset[str]], list[str]] = {}
    for m in moves:
        groups.setdefault((m.before, m.after), []).append(m.email)
    return (
        "["
        + ",".join(
            sorted(
                f"[{json_list(sorted(before))},{json_list(sorted(after))},{json_list(sorted(emails))}]"
                for (before, after), emails in groups.items()
            )
        )
        + "]"
    )


def moves_of(text: str) -> list[EmailMove]:
    moves = [
        EmailMove(email, frozenset(before), frozenset(after))
        for before, after, emails in json.loads(text)
        for email in emails
    ]
    moves.sort(key=lambda m: m.email)
    return moves


def decision_of(row: sqlite3.Row, moves: list[EmailMove]) -> Decision:
    intent = Intent(
        subject=row["subject"],
        kind=DecisionKind(row["kind"]),
        category=row["category"],
        trigger=row["trigger"],
        label_email=row["label_email"],
        undoes=row["undoes"],
        rule=row["rule"],
    )
    effects = Effects(
        previous=row["previous"],
        contact_id=row["contact_id"],
        contact_uid=row["contact_uid"],
        contact_created=bool(row["contact_created"]),
        contact_name=row["contact_name"],
        contact_kind=row["contact_kind"],
        filled=tuple(json.loads(row["filled"])),
        joined=tuple(json.loads(row["joined"])),
        left=tuple(json.loads(row["left_groups"])),
        moves=tuple(moves),
    )
    return Decision(
        id=row["id"],
        started=row["started"],
        finished=row["finished"],
        intent=intent,
        outcome=Outcome(row["outcome"]),
        reason=row["reason"],
        effects=effects,
        moves_pruned=bool(row["moves_pruned"]),
        planned=bool(row["planned"]),
    )
