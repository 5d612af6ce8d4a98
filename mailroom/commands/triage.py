"""``mailroom triage SENDER|@DOMAIN CATEGORY [--apply] [--force]``: decide without an email.

The same steps as a labelled email (recorded with trigger ``cli``): the
sender's contact and groups, then all its mail re-filed. For ``@DOMAIN`` the
rule is recorded and every sender of the domain waiting in the Screener is
triaged now (later ones by the service's passes); public suffixes and the
shared mail providers are refused (the latter unless ``--force``). Dry by
default: it prints what it would do. Safe while the service runs: the writes
are the same conditional ones a pass makes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TextIO

from mailroom.account.categories import Category
from mailroom.core.words import count
from mailroom.domains.names import normal, refusal
from mailroom.errors import MailroomError
from mailroom.ledger.location import elsewhere_hint
from mailroom.ledger.sqlite_file import LedgerError
from mailroom.ledger.store import Ledger
from mailroom.lists.listid import SUBJECT_PREFIX, parse_subject
from mailroom.net import api_client
from mailroom.settings import Settings
from mailroom.triage.records import SenderRecord, Stage
from mailroom.wiring import Clients, make_clients
from mailroom.writer.commands import writing

EXIT_ERROR, EXIT_CONFIG = 1, 2


def find_category(settings: Settings, wanted: str) -> Category | None:
    """By name or by label, whatever the case: ``feed``, ``Paper Trail``, ``@ToFeed``."""
    key = wanted.strip().casefold()
    for c in settings.categories:
        if key in (c.name.casefold(), c.label.casefold()):
            return c
    return None


async def run_triage(
    settings: Settings,
    sender: str,
    wanted: str,
    *,
    apply: bool,
    out: TextIO,
    err: TextIO,
    force: bool = False,
) -> int:
    hint = elsewhere_hint(os.environ) if apply else None
    if hint is not None:
        # A second ledger (and a second writer) for the account the service
        # already records: never started from a shell by accident.
        print(f"mailroom triage: no ledger at {settings.ledger_path}; {hint}", file=err)
        return EXIT_CONFIG
    category = find_category(settings, wanted)
    if category is None:
        names = ", ".join(c.name for c in settings.categories)
        print(f"mailroom triage: no category {wanted!r} (one of {names})", file=err)
        return EXIT_CONFIG
    ident = parse_subject(sender)
    if sender.strip().lower().startswith(SUBJECT_PREFIX):
        if ident is None:
            print(f"mailroom triage: {sender!r} is not a mailing list's id", file=err)
            return EXIT_CONFIG
        return await _list(settings, ident, category, apply=apply, out=out, err=err)
    if sender.strip().startswith("@"):
        domain = normal(sender)
        why = refusal(domain, force=force)
        if why is not None:
            print(f"mailroom triage: {why}", file=err)
            return EXIT_CONFIG
        return await _domain(settings, domain, category, apply=apply, out=out, err=err)
    if "@" not in sender.strip(" @"):
        print(f"mailroom triage: {sender!r} is not an email address", file=err)
        return EXIT_CONFIG
    try:
        async with _connected(settings, apply=apply, err=err) as clients:
            _, records = await clients.triage.decide(sender, category)
    except MailroomError as exc:
        print(f"mailroom triage: {exc}", file=err)
        return EXIT_ERROR
    (record,) = records
    for line in describe(record, category, apply=apply):
        print(line, file=out)
    return 0 if record.alive or record.stage is Stage.UNLABELLED else EXIT_ERROR


@contextlib.asynccontextmanager
async def _connected(settings: Settings, *, apply: bool, err: TextIO) -> AsyncIterator[Clients]:
    """The account's clients, set up; applying: under the writer lock, with the ledger."""
    ledger = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            if apply:
                await stack.enter_async_context(writing(settings, "triage", err))
                ledger, _ = Ledger.open(settings.ledger_path)
            http = await stack.enter_async_context(api_client(settings.poll_interval))
            clients = make_clients(settings, http, dry_run=not apply, ledger=ledger)
            await clients.connect()
            await clients.triage.setup()
            yield clients
    finally:
        if ledger is not None:
            ledger.close()


async def _list(
    settings: Settings, ident: str, category: Category, *, apply: bool, out: TextIO, err: TextIO
) -> int:
    """Every email of the list waiting in the Screener filed, and the rule kept
    for its later posts (recorded as ``list:<id>``); no contact changes."""
    try:
        async with _connected(settings, apply=apply, err=err) as clients:
            filed = await clients.triage.decide_list(ident, category)
    except MailroomError as exc:
        print(f"mailroom triage: {exc}", file=err)
        return EXIT_ERROR
    if not apply:
        print(
            f"would decide list:{ident} into {category.name}: "
            f"{count(filed.moved, 'email')} of it waiting in the Screener filed now, "
            "later posts by the service",
            file=out,
        )
        print("dry run: nothing changed; run again with --apply to do it", file=out)
        return 0
    if filed.failed is not None:
        print(
            f"mailroom triage: list:{ident} not finished: {filed.failed} "
            f"({count(filed.moved, 'email')} filed); run it again to finish, "
            f"or `mailroom undo list:{ident}`",
            file=err,
        )
        return EXIT_ERROR
    print(
        f"decided list:{ident} into {category.name}: {count(filed.moved, 'email')} filed now; "
        "later posts are filed by the service",
        file=out,
    )
    return 0


async def _domain(
    settings: Settings, domain: str, category: Category, *, apply: bool, out: TextIO, err: TextIO
) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        try:
            # A dry run only reads the ledger (an empty one if there is none yet).
            path = settings.ledger_path if apply or settings.ledger_path.exists() else None
            ledger, _ = Ledger.open(path or Path(scratch) / "mailroom.db")
        except LedgerError as exc:
            print(f"mailroom triage: {exc}", file=err)
            return EXIT_ERROR
        try:
            async with contextlib.AsyncExitStack() as stack:
                if apply:
                    await stack.enter_async_context(writing(settings, "triage", err))
                http = await stack.enter_async_context(api_client(settings.poll_interval))
                clients = make_clients(settings, http, dry_run=not apply, ledger=ledger)
                await clients.connect()
                await clients.triage.setup()
                _, records = await clients.triage.decide_domain(domain, category, ledger)
        except MailroomError as exc:
            print(f"mailroom triage: {exc}", file=err)
            return EXIT_ERROR
        finally:
            ledger.close()
    verb = "decided" if apply else "would decide"
    print(f"{verb} @{domain} (and its subdomains) into {category.name}", file=out)
    print(
        f"  {count(len(records), 'sender')} of it waiting in the Screener"
        + (": triaged now" if apply else "")
        + "; new ones are triaged by the service as their mail arrives",
        file=out,
    )
    failed = 0
    for record in records:
        for line in describe(record, category, apply=apply, dry_note=False):
            print(f"  {line}", file=out)
        failed += not (record.alive or record.stage is Stage.UNLABELLED)
    if not apply:
        print("dry run: nothing changed; run again with --apply to do it", file=out)
    return EXIT_ERROR if failed else 0


def describe(
    record: SenderRecord, category: Category, *, apply: bool, dry_note: bool = True
) -> list[str]:
    if not record.alive:
        return [f"{record.sender}: not triaged: {record.reason}"]
    change = record.change
    verb = "triaged" if apply else "would triage"
    lines = [f"{verb} {record.sender} into {category.name}"]
    if change is not None:
        lines.append(f"  contact: {change.known.action.value}")
        if change.join:
            lines.append(f"  join groups: {', '.join(change.join)}")
        if change.leave:
            lines.append(f"  leave groups: {', '.join(change.leave)}")
    lines.append(f"  emails re-filed: {len(record.refiled)}")
    if not apply and dry_note:
        lines.append("dry run: nothing changed; run again with --apply to do it")
    return lines
