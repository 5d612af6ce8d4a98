"""``mailroom history``: the decisions in the ledger, newest first.

One line per decision; for one sender, its whole trail: each decision, the
contact, the groups joined and left, every email moved from where to where.
Reads the ledger only; never creates it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from mailroom.ledger.location import elsewhere_hint
from mailroom.ledger.model import Decision, DecisionKind, Outcome
from mailroom.ledger.reading import Filter
from mailroom.ledger.sqlite_file import LedgerError
from mailroom.ledger.store import Ledger

EXIT_ERROR = 1


def parse_since(text: str) -> float:
    """A date (local midnight) or a date and time, as the user's clock reads it."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since: expected a date like 2026-11-30 or 2026-11-30T08:00, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the local zone
    return moment.timestamp()


def run_history(
    path: Path,
    which: Filter,
    *,
    as_json: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    if not path.exists():
        print(f"no decisions yet: no ledger at {path}", file=out)
        hint = elsewhere_hint(os.environ)
        if hint:
            print(f"  but {hint}", file=out)
        return 0
    try:
        ledger, _ = Ledger.open(path)
        try:
            decisions = ledger.history(which)
            names = ledger.mailbox_names()
        finally:
            ledger.close()
    except LedgerError as exc:
        print(f"mailroom history: {exc}", file=err)
        return EXIT_ERROR
    if as_json:
        print(json.dumps([to_json(d, names) for d in decisions], indent=2), file=out)
        return 0
    one_sender = which.subject is not None and not which.subject.startswith("@")
    print(render(decisions, names, trail=one_sender), file=out, end="")
    return 0


def render(decisions: Sequence[Decision], names: Mapping[str, str], *, trail: bool) -> str:
    if not decisions:
        return "no decisions match\n"
    lines = []
    for d in decisions:
        lines.append(_line(d, with_subject=not trail))
        if trail:
            lines += [f"    {text}" for text in _detail(d, names)]
    return "\n".join(lines) + "\n"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def _line(d: Decision, *, with_subject: bool) -> str:
    i, e = d.intent, d.effects
    category = i.category or "Screener"
    if i.kind is DecisionKind.UNDO:
        category = f"undo: back to {category} (from {e.previous})"
    elif e.previous:
        category += f" (was {e.previous})"
    if i.rule is not None:
        category += f" (by domain rule #{i.rule})"
    elif i.subject.startswith("@") and i.kind is DecisionKind.TRIAGE:
        category += " (whole domain)"
    state = {
        Outcome.DONE: "done",
        Outcome.PENDING: "in progress or interrupted",
        Outcome.PARTIAL: f"stopped part-way (what landed stands until undone): {d.reason}",
        Outcome.FAILED: f"failed: {d.reason}",
    }[d.outcome]
    moved = "" if d.outcome is not Outcome.DONE else f"  {_emails(d)}"
    who = f"{i.subject}  " if with_subject else ""
    return f"{_when(d.started)}  {who}{category}  {i.trigger}  {state}{moved}"


def _emails(d: Decision) -> str:
    if d.moves_pruned:
        return "email detail pruned"
    n = len(d.effects.moves)
    return f"{n} email{'' if n == 1 else 's'} moved"


def _detail(d: Decision, names: Mapping[str, str]) -> list[str]:
    e = d.effects
    out = []
    if d.reason and d.outcome is Outcome.DONE:
        out.append(d.reason)
    if d.intent.kind is DecisionKind.UNDO:
        pass  # an undo makes no contact; what became of one is its reason
    elif e.contact_created or e.contact_uid:
        made = "created by Mailroom" if e.contact_created else "existing"
        out.append(f"contact: {made}" + (f" (uid {e.contact_uid})" if e.contact_uid else ""))
        if e.filled:
            out.append(f"contact: {', '.join(e.filled)} filled by Mailroom")
    if e.joined or e.left:
        out.append(
            "groups: "
            + "; ".join(
                part
                for part in (
                    f"joined {', '.join(e.joined)}" if e.joined else "",
                    f"left {', '.join(e.left)}" if e.left else "",
                )
                if part
            )
        )
    for m in e.moves:
        out.append(f"email {m.email}: {_boxes(m.before, names)} -> {_boxes(m.after, names)}")
    if d.moves_pruned:
        out.append("(email detail pruned: older than MAILROOM_LEDGER_RETENTION_DAYS)")
    return out


def _boxes(ids: frozenset[str], names: Mapping[str, str]) -> str:
    return ", ".join(sorted(names.get(i, f"mailbox {i}") for i in ids)) or "(none)"


def to_json(d: Decision, names: Mapping[str, str]) -> dict[str, Any]:
    i, e = d.intent, d.effects

    def iso(t: float | None) -> str | None:
        if t is None:
            return None
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    return {
        "id": d.id,
        "started": iso(d.started),
        "finished": iso(d.finished),
        "subject": i.subject,
        "kind": i.kind.value,
        "domain_rule": i.rule,
        "category": i.category,
        "previous": e.previous,
        "trigger": i.trigger,
        "outcome": d.outcome.value,
        "reason": d.reason,
        "contact": {"uid": e.contact_uid, "created": e.contact_created},
        "groups_joined": list(e.joined),
        "groups_left": list(e.left),
        "emails": [
            {
                "id": m.email,
                "before": sorted(names.get(b, b) for b in m.before),
                "after": sorted(names.get(a, a) for a in m.after),
            }
            for m in e.moves
        ],
        "email_detail_pruned": d.moves_pruned,
    }
