"""``mailroom undo SENDER`` and ``mailroom reset``: decisions taken back.

Dry by default: each prints what it would do. With ``--apply`` they do it
with the pass's own batched means (``takeback/``) and record every
undo in the ledger, intent first. ``reset`` undoes everything, a batch of
senders at a time (its request count is constant per batch), walking each
sender back to before its first decision; interrupted, it is simply run again.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TextIO

from mailroom.core.vocabulary import Trigger
from mailroom.core.words import count
from mailroom.domains.names import is_domain_name, normal
from mailroom.errors import MailroomError
from mailroom.ledger.location import elsewhere_hint
from mailroom.ledger.reading import TRAIL, Filter
from mailroom.ledger.sqlite_file import LedgerError
from mailroom.ledger.store import Ledger
from mailroom.lists.listid import SUBJECT_PREFIX, parse_subject
from mailroom.lists.undo import undo_rule_of_list
from mailroom.settings import Settings
from mailroom.takeback.apply import Undone
from mailroom.takeback.domain import undo_rule
from mailroom.takeback.plan import PRUNED, UndoPlan, describe, undoable
from mailroom.takeback.reset import BATCH, reset_all
from mailroom.takeback.session import Session, open_session
from mailroom.writer.commands import writing

EXIT_ERROR = 1


def subject_problem(subject: str) -> str | None:
    """Why ``subject`` is neither an address nor ``@domain`` (None: it is one)."""
    text = subject.strip()
    if text.lower().startswith(SUBJECT_PREFIX):
        if parse_subject(text) is None:
            return f"{subject!r} is not a mailing list's id (list:users.lists.example)"
        return None
    if text.startswith("@"):
        if not is_domain_name(normal(text)):
            return f"{subject!r} is not a domain name (an address, or @domain for a domain's rule)"
        return None
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in text) or len(text) > 320:
        return f"{subject!r} is not an email address (or @domain for a domain's rule)"
    return None


def nothing_to_undo(path: Path, subject: str) -> str | None:
    """What to say when the ledger alone shows there is nothing to undo (read
    before any setting is needed: no token asked for nothing), else None."""
    if not path.exists():
        hint = elsewhere_hint(os.environ)
        return f"nothing to undo: no ledger at {path}" + (f"\n  but {hint}" if hint else "")
    try:
        ledger, _ = Ledger.open(path)
    except LedgerError:
        return None  # the command says what is wrong with it
    try:
        subject = subject.strip().lower()
        exact = subject.startswith("@")
        if exact:
            subject = f"@{normal(subject)}"
        if undoable(ledger.history(Filter(subject, limit=TRAIL, exact=exact))) is None:
            return f"nothing to undo for {subject}"
        return None
    finally:
        ledger.close()


async def run_undo(
    settings: Settings, sender: str, *, apply: bool, out: TextIO, err: TextIO
) -> int:
    sender = sender.strip().lower()
    ident = parse_subject(sender)
    if ident is not None:
        sender = SUBJECT_PREFIX + ident
    ledger = _open("undo", settings, out, err)
    if not isinstance(ledger, Ledger):
        return ledger
    try:
        # With --apply, read, plan and write under the account's writer lock: a
        # pass of the service waits, and never decides between the plan and the write.
        async with contextlib.AsyncExitStack() as stack:
            if apply:
                await stack.enter_async_context(writing(settings, "undo", err))
            if sender.startswith("@"):
                return await _undo_domain(settings, ledger, normal(sender), apply, out, err)
            if ident is not None:
                return await _undo_list(settings, ledger, ident, apply, out)
            decision = undoable(ledger.history(Filter(sender, limit=TRAIL)))
            if decision is None:
                print(f"nothing to undo for {sender}", file=out)
                return 0
            s = await stack.enter_async_context(open_session(settings, ledger, apply=apply))
            plans = await s.takeback.plan([decision], ledger)
            _print_plans(plans, s.names, out)
            if not apply:
                print("dry run: nothing changed; run again with --apply to do it", file=out)
                return 0
            (undone,) = await s.takeback.apply(plans, ledger, Trigger.CLI)
            return _report([undone], out, err)
    except MailroomError as exc:
        print(f"mailroom undo: {exc}", file=err)
        return EXIT_ERROR
    finally:
        ledger.close()


async def _undo_domain(
    settings: Settings, ledger: Ledger, domain: str, apply: bool, out: TextIO, err: TextIO
) -> int:
    """The domain's latest rule taken back with every sender it triaged (its
    undo is begun first: the rule stops applying while its senders go back)."""
    subject = f"@{domain}"
    rule = undoable(ledger.history(Filter(subject, limit=TRAIL, exact=True)))
    if rule is None:
        print(f"nothing to undo for {subject}", file=out)
        return 0
    before = rule.effects.previous
    print(
        f"undo: {subject} back from {rule.intent.category} to "
        + (f"{before} (the rule before)" if before else "no rule"),
        file=out,
    )
    ruled = ledger.ruled_by([rule.id])
    async with open_session(settings, ledger, apply=apply) as s:
        plans = await s.takeback.plan(ruled, ledger)
        for plan in plans:
            for line in describe(plan, s.names):
                print(f"  {line}", file=out)
        if not apply:
            print("dry run: nothing changed; run again with --apply to do it", file=out)
            return 0
        results = await undo_rule(ledger, s.takeback, rule, plans)
        code = _report(results, out, err)
        if code != 0:
            print(
                f"mailroom undo: the rule for {subject} stays suspended until every sender "
                "is back; run it again",
                file=err,
            )
            return code
        print(f"done: {subject} is no longer decided as {rule.intent.category}", file=out)
        return 0


async def _undo_list(
    settings: Settings, ledger: Ledger, ident: str, apply: bool, out: TextIO
) -> int:
    """A mailing list's decision taken back with every email filed by it."""
    rule = ledger.list_rules().get(ident)
    if rule is None:
        print(f"nothing to undo for {SUBJECT_PREFIX}{ident}", file=out)
        return 0
    filings = ledger.filed_by(rule.id)
    emails = sum(len(d.effects.moves) for d in [rule, *filings])
    verb = "undo" if apply else "would undo"
    print(
        f"{verb}: {SUBJECT_PREFIX}{ident} back from {rule.intent.category}: "
        f"{count(emails, 'email')} it filed back to the Screener (those you moved since stay)",
        file=out,
    )
    if not apply:
        print("dry run: nothing changed; run again with --apply to do it", file=out)
        return 0
    async with open_session(settings, ledger, apply=True) as s:
        takeback = s.takeback
        back, left = await undo_rule_of_list(
            takeback.jmap, takeback.boxes, ledger, rule, Trigger.CLI.value
        )
    print(
        f"done: {count(back, 'email')} back, {count(left, 'email')} left where you moved them",
        file=out,
    )
    return 0


async def run_reset(settings: Settings, *, apply: bool, out: TextIO, err: TextIO) -> int:
    """Every decision taken back, newest first, a batch of senders at a time."""
    ledger = _open("reset", settings, out, err)
    if not isinstance(ledger, Ledger):
        return ledger
    try:
        if not apply:
            async with open_session(settings, ledger, apply=False) as s:
                return await _rehearse_reset(s, out)
        # The whole reset under the writer lock: no pass re-triages a sender
        # between its rounds.
        async with writing(settings, "reset", err), open_session(settings, ledger, apply=True) as s:
            return await _reset(s, out, err)
    except MailroomError as exc:
        print(f"mailroom reset: {exc}", file=err)
        return EXIT_ERROR
    finally:
        ledger.close()


async def _rehearse_reset(s: Session, out: TextIO) -> int:
    standing = s.ledger.standing(limit=TRAIL)
    if not standing:
        print("nothing to reset: no decision stands", file=out)
        return 0
    for start in range(0, len(standing), BATCH):
        _print_plans(await s.takeback.plan(standing[start : start + BATCH], s.ledger), s.names, out)
    print(
        f"dry run: {count(len(standing), 'sender')} would go back to where they were before "
        "Mailroom decided (a re-triaged sender through each category it had); "
        "run again with --apply to do it",
        file=out,
    )
    return 0


async def _reset(s: Session, out: TextIO, err: TextIO) -> int:
    def progress(undone: int, left: int) -> None:
        if err.isatty():
            print(f"reset: {count(undone, 'decision')} taken back, {left} to go", file=err)

    undone, failed = await reset_all(s.ledger, s.takeback, progress)
    for sender, why in sorted(failed.items()):
        print(f"failed: {sender}: {why}", file=err)
    if failed:
        print(
            f"reset: {count(undone, 'decision')} taken back, "
            f"{count(len(failed), 'sender')} failed; "
            "run it again to retry them",
            file=err,
        )
        return EXIT_ERROR
    if undone == 0:
        print("nothing to reset: no decision stands", file=out)
        return 0
    print(f"done: {count(undone, 'decision')} taken back; no decision stands", file=out)
    return 0


def _print_plans(plans: list[UndoPlan], names: dict[str, str], out: TextIO) -> None:
    for plan in plans:
        for line in describe(plan, names):
            print(line, file=out)


def _report(results: list[Undone], out: TextIO, err: TextIO) -> int:
    code = 0
    for r in results:
        if r.error is not None:
            print(f"mailroom undo: {r.plan.sender} failed, {r.error}; run it again", file=err)
            code = EXIT_ERROR
            continue
        if r.plan.decision.moves_pruned:
            print(
                f"done: {r.plan.sender} is out of {r.plan.decision.intent.category} (its groups "
                f"as before); {PRUNED}",
                file=out,
            )
        else:
            print(f"done: {r.plan.sender} is back in {r.plan.back_to}", file=out)
        if r.contact:
            print(f"  {r.contact}", file=out)
    return code


def _open(command: str, settings: Settings, out: TextIO, err: TextIO) -> Ledger | int:
    """The ledger if there is one (these commands never create it), else the exit code."""
    path: Path = settings.ledger_path
    if not path.exists():
        hint = elsewhere_hint(os.environ)
        print(f"nothing to {command}: no ledger at {path}", file=out)
        if hint:
            print(f"  but {hint}", file=out)
        return 0
    try:
        return Ledger.open(path)[0]
    except LedgerError as exc:
        print(f"mailroom {command}: {exc}", file=err)
        return EXIT_ERROR
