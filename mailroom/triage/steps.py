"""The steps of a triage pass, each over every sender still alive, in a constant
number of requests.

The order per sender is the one that keeps the account right whatever fails:
contact and groups (what routes future mail), then all their mail re-filed,
then the labels off, last, so a failure anywhere is simply retried by the next
pass. A step takes the records still alive and returns them; a sender failing
at a step is marked and left out of the later ones, the others go on. A step
failing as a whole fails every sender still in it, except rejected
credentials, which fail the pass (they are nobody's sender).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mailroom.account.categories import Categories
from mailroom.account.mailboxes import MailboxMap
from mailroom.contacts import uids
from mailroom.contacts.book import (
    Change,
    ContactBook,
    ContactsAuthError,
    ContactsError,
    GroupMissingError,
    Want,
)
from mailroom.jmap.client import JmapClient
from mailroom.jmap.errors import JmapAuthError, JmapError, JmapSetError
from mailroom.jmap.moves import NOT_FILED
from mailroom.jmap.wire import any_of_chunks
from mailroom.lists.listid import LIST_ID, list_id
from mailroom.triage.records import PassResult, SenderRecord, Stage
from mailroom.triage.refile import patched, plan_groups, plan_label_removal, plan_refile
from mailroom.triage.scan import mailbox_ids_of, sender_of

log = logging.getLogger(__name__)
T = TypeVar("T")
# Failures the servers can cause: logged without a traceback.
EXPECTED_ERRORS = (JmapError, ContactsError)
EMAIL_PROPERTIES = ("id", "from", "mailboxIds", LIST_ID)
# Pages of a long result asked in one request (within maxCallsInRequest): a
# large labelling costs round trips / PAGES_AT_ONCE.
PAGES_AT_ONCE = 4

Flag = Callable[[list[str], PassResult], Awaitable[None]]


@dataclass
class Pass:
    """What the steps share: the servers, the settings, and the pass's own record."""

    jmap: JmapClient
    book: ContactBook
    categories: Categories
    boxes: MailboxMap
    result: PassResult
    flag: Flag  # gives emails the error label (logged and counted if refused)
    groups_stale: bool = False  # a managed group vanished: look again next pass
    # sender -> the uid an open decision of theirs planned for the contact it
    # was making: a retry makes it under that uid (the one the ledger names).
    planned_uids: Mapping[str, str] = field(default_factory=dict)
    # Mailing lists with a decision in force: their posts are the list's to
    # file (``lists.filing``), so a sender's decision leaves them where they are.
    lists: frozenset[str] = frozenset()

    def fail(self, record: SenderRecord, exc: BaseException | None, message: str = "") -> None:
        """Count and log a sender left for the next pass; its labels stay."""
        result = self.result
        record.stage = Stage.FAILED
        record.reason = message or str(exc) or type(exc).__name__
        result.failures += 1
        result.last_error = record.reason
        if isinstance(exc, GroupMissingError):
            self.groups_stale = True
            if exc.group is not None:
                result.missing.add(f"contact group {exc.group!r}")
        expected = exc is None or isinstance(exc, EXPECTED_ERRORS)
        log.error(
            "triage failed; labels kept for the next pass",
            exc_info=None if expected else exc,  # the unforeseen get their traceback
            extra={
                "fields": {
                    "sender": record.sender,
                    "category": record.work.category.name,
                    "error": record.reason,
                }
            },
        )

    async def batched(self, records: list[SenderRecord], step: Awaitable[T]) -> T | None:
        """Run one request-batched step; if it fails as a whole, its senders fail."""
        try:
            return await step
        except (JmapAuthError, ContactsAuthError):
            raise
        except Exception as exc:
            for record in records:
                self.fail(record, exc)
            return None


def alive(records: Sequence[SenderRecord]) -> list[SenderRecord]:
    return [r for r in records if r.alive]


async def look_up(p: Pass, records: list[SenderRecord]) -> list[SenderRecord]:
    """What the book has for every sender, and the groups each must join and leave."""
    wants = [Want(r.sender, r.work.display_name, r.work.category.contact_type) for r in records]
    lookup = await p.batched(records, p.book.lookup(wants))
    if lookup is None:
        return []
    for record in records:
        if record.sender in lookup.failed:
            p.fail(record, lookup.failed[record.sender])
            continue
        known = lookup.known[record.sender]
        groups = plan_groups(known.all_groups, record.work.category, p.categories)
        change = Change(known, groups.add, groups.remove)
        planned = p.planned_uids.get(record.sender)
        if planned is not None and known.uid is None:
            change = Change(known, groups.add, groups.remove, new_uid=planned)
        record.known, record.change = known, change
        record.stage = Stage.LOOKED_UP
    return alive(records)


async def one_category_per_contact(p: Pass, records: list[SenderRecord]) -> list[SenderRecord]:
    """Two addresses of one contact labelled with different categories: a conflict.

    The contact can only be in one category; which one is meant is the user's
    to say, so both senders get the error label and keep theirs.
    """
    by_contact: dict[str, list[SenderRecord]] = {}
    for record in records:
        known = record.known
        if known is None or known.uid is None:
            continue
        for uid in {uids.canonical(known.uid), *(uids.canonical(t.uid) for t in known.twins)}:
            by_contact.setdefault(uid, []).append(record)
    torn = {
        r.sender: r
        for group in by_contact.values()
        if len({r.work.category.name for r in group}) > 1
        for r in group
    }
    if not torn:
        return records
    await p.flag([eid for r in torn.values() for eid in r.work.emails], p.result)
    for record in torn.values():
        record.stage = Stage.FLAGGED
        record.reason = "one contact, two categories"
        p.result.conflicts += 1
        log.warning(
            "one contact has addresses labelled with different categories; added the error label",
            extra={"fields": {"sender": record.sender, "category": record.work.category.name}},
        )
    return alive(records)


async def find_mail(p: Pass, records: list[SenderRecord]) -> list[SenderRecord]:
    """Every email of every sender (id -> mailboxes), the labelled ones included.

    The JMAP ``from`` filter is a text match, so the exact address is
    confirmed here; the senders go a hundred to a query.
    """
    mail = await p.batched(records, _senders_mail(p.jmap, records, p.lists))
    if mail is None:
        return []
    for record in records:
        record.mail = mail[record.sender]
        plan_mail(p, record)
        record.stage = Stage.MAIL_FOUND
    return records


def plan_mail(p: Pass, record: SenderRecord) -> None:
    """Every mail write of the sender, planned before any is made (the ledger
    records the plan first): its mail re-filed, then the labels off."""
    category = record.work.category
    record.refiled = plan_refile(record.mail, category, p.categories, p.boxes)
    after = {
        eid: patched(record.mail[eid], record.refiled.get(eid, {})) for eid in record.work.emails
    }
    record.unlabelled = plan_label_removal(after, category, p.categories, p.boxes)


async def _senders_mail(
    jmap: JmapClient, records: list[SenderRecord], lists: frozenset[str]
) -> dict[str, dict[str, frozenset[str]]]:
    """Each sender's mail; posts to a list decided on its own are left out
    (the list's decision wins inside the list), unless labelled for the sender."""
    mail: dict[str, dict[str, frozenset[str]]] = {r.sender: dict(r.work.emails) for r in records}
    for filter_ in any_of_chunks([{"from": r.sender} for r in records]):
        for email in await jmap.query_emails(filter_, EMAIL_PROPERTIES, per_request=PAGES_AT_ONCE):
            who = sender_of(email)
            if who is None or who[0] not in mail or not isinstance(email.get("id"), str):
                continue
            if lists and list_id(email.get(LIST_ID)) in lists and email["id"] not in mail[who[0]]:
                continue
            mail[who[0]][email["id"]] = mailbox_ids_of(email)
    return mail


async def write_contacts(p: Pass, records: list[SenderRecord]) -> list[SenderRecord]:
    """Contacts created or filled, groups joined and left: all senders in one go."""
    for record in records:
        record.wrote = True  # from here on, whatever fails may have landed in part
    changes = [r.change for r in records if r.change is not None]
    failed = await p.batched(records, p.book.apply(changes))
    if failed is None:
        return []
    for record in records:
        if record.sender in failed:
            p.fail(record, failed[record.sender])
        else:
            record.stage = Stage.GROUPED
    return alive(records)


async def refile(p: Pass, records: list[SenderRecord]) -> list[SenderRecord]:
    """Every email of every sender re-filed, in one Email/set (chunked to the limits)."""
    patches: dict[str, dict[str, Any]] = {}
    for record in records:
        patches.update(record.refiled)
    return await _write_mail(p, records, patches, Stage.REFILED)


async def unlabel(p: Pass, records: list[SenderRecord]) -> list[SenderRecord]:
    """The labels come off last: a sender whose labels are off is triaged."""
    patches: dict[str, dict[str, Any]] = {}
    for record in records:
        patches.update(record.unlabelled)
    return await _write_mail(p, records, patches, Stage.UNLABELLED)


async def _write_mail(
    p: Pass, records: list[SenderRecord], patches: dict[str, dict[str, Any]], reached: Stage
) -> list[SenderRecord]:
    """Every sender's patches at once, as moves that never lose an email (added
    and seen there before it leaves its old mailboxes); senders with an email
    refused or not filed fail. An email deleted meanwhile needs nothing.
    """
    outcome = await p.batched(records, p.jmap.move_emails(patches))
    if outcome is None:
        return []
    p.result.record(outcome)
    mine = {eid: r for r in records for eid in (*r.mail, *r.work.emails)}
    refused: dict[str, dict[str, dict[str, Any]]] = {}
    for eid, err in outcome.failures.items():
        if err.get("type") != "notFound" and eid in mine:
            refused.setdefault(mine[eid].sender, {})[eid] = err
    for record in records:
        if record.sender in refused:
            emails = refused[record.sender]
            p.fail(
                record, JmapSetError("Email/set", "notUpdated", emails), _why(p, patches, emails)
            )
        else:
            record.stage = reached
    return alive(records)


def _why(
    p: Pass, patches: Mapping[str, Mapping[str, Any]], refused: Mapping[str, Mapping[str, Any]]
) -> str:
    """A sender's refused emails, in words: which, into which mailboxes, and why."""
    parts = []
    for eid, err in sorted(refused.items())[:3]:
        into = sorted(
            p.boxes.names.get(m, m)
            for k, v in patches.get(eid, {}).items()
            if v is True and (m := k.removeprefix("mailboxIds/"))
        )
        where = f" into {', '.join(repr(n) for n in into)}" if into else ""
        kind = err.get("type", "refused")
        text = "the server answered 'updated' but did not file it" if kind == NOT_FILED else kind
        if err.get("description") and kind != NOT_FILED:
            text += f" ({err['description']})"
        parts.append(f"email {eid} not filed{where}: {text}")
    more = len(refused) - len(parts)
    tail = f" and {more} more" if more > 0 else ""
    return "; ".join(parts) + tail + "; left where they were, retried next pass"


STEPS = (look_up, one_category_per_contact, find_mail, write_contacts, refile, unlabel)
