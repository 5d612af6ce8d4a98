"""``mailroom triage SENDER CATEGORY [--apply]``: decide without finding an email.

The same steps as a labelled email (recorded with trigger ``cli``): the
sender's contact and groups, then all its mail re-filed. Dry by default: it
prints what it would do. Safe while the service runs: the writes are the
same conditional ones a pass makes.
"""

from __future__ import annotations

from typing import TextIO

from mailroom.contacts.book import ContactsError
from mailroom.jmap.errors import JmapError
from mailroom.ledger.sqlite_file import LedgerError
from mailroom.ledger.store import Ledger
from mailroom.net import api_client
from mailroom.service import make_clients
from mailroom.settings import Settings
from mailroom.triage.categories import Category
from mailroom.triage.records import SenderRecord, Stage
from mailroom.triage.workflow import AccountConflict

EXIT_ERROR, EXIT_CONFIG = 1, 2


def find_category(settings: Settings, wanted: str) -> Category | None:
    """By name or by label, whatever the case: ``feed``, ``Paper Trail``, ``@ToFeed``."""
    key = wanted.strip().casefold()
    for c in settings.categories:
        if key in (c.name.casefold(), c.label.casefold()):
            return c
    return None


async def run_triage(
    settings: Settings, sender: str, wanted: str, *, apply: bool, out: TextIO, err: TextIO
) -> int:
    category = find_category(settings, wanted)
    if category is None:
        names = ", ".join(c.name for c in settings.categories)
        print(f"mailroom triage: no category {wanted!r} (one of {names})", file=err)
        return EXIT_CONFIG
    if "@" not in sender.strip(" @"):
        print(f"mailroom triage: {sender!r} is not an email address", file=err)
        return EXIT_CONFIG
    ledger = None
    try:
        if apply:
            ledger, _ = Ledger.open(settings.ledger_path)
        async with api_client(settings.poll_interval) as http:
            clients = make_clients(settings, http, dry_run=not apply, ledger=ledger)
            await clients.connect()
            await clients.triage.setup()
            _, records = await clients.triage.decide(sender, category)
    except (JmapError, ContactsError, LedgerError, AccountConflict) as exc:
        print(f"mailroom triage: {exc}", file=err)
        return EXIT_ERROR
    finally:
        if ledger is not None:
            ledger.close()
    (record,) = records
    for line in describe(record, category, apply=apply):
        print(line, file=out)
    return 0 if record.alive or record.stage is Stage.UNLABELLED else EXIT_ERROR


def describe(record: SenderRecord, category: Category, *, apply: bool) -> list[str]:
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
    if not apply:
        lines.append("dry run: nothing changed; run again with --apply to do it")
    return lines
