"""The error label on what a pass cannot triage, each with a log line saying why:
conflicting labels, no sender address, several From addresses, the account's
own address."""

from __future__ import annotations

import logging

from mailroom.account.mailboxes import MailboxMap
from mailroom.jmap.client import JmapClient
from mailroom.jmap.errors import JmapSetError
from mailroom.triage.records import PassResult
from mailroom.triage.rehearsal import Rehearsal
from mailroom.triage.scan import ScanPlan
from mailroom.triage.steps import Flag

log = logging.getLogger(__name__)


async def flag_untriageable(
    plan: ScanPlan, result: PassResult, boxes: MailboxMap, error_label: str, flag: Flag
) -> None:
    """The error label on what cannot be triaged, each with a log line saying why."""
    own = [eid for ids in plan.own.values() for eid in ids]
    conflicting = [eid for ids in plan.conflicts.values() for eid in ids]
    flagged = [*conflicting, *plan.unreadable, *plan.several_from, *own, *plan.no_list]
    if not flagged:
        return
    if not boxes.error_label:
        result.unflagged += len(flagged)
        log.error(
            "cannot add the error label: it is missing",
            extra={"fields": {"emails": len(flagged), "label": error_label}},
        )
        return
    await flag(flagged, result)
    result.conflicts = len(plan.conflicts)
    for sender, ids in plan.conflicts.items():
        log.warning(
            "conflicting triage labels; added the error label",
            extra={"fields": {"sender": sender, "emails": len(ids)}},
        )
    if plan.unreadable:
        log.warning(
            "labelled emails without a sender address; added the error label",
            extra={"fields": {"emails": len(plan.unreadable)}},
        )
    if plan.several_from:
        log.warning(
            "labelled emails with several From addresses: which sender is meant "
            "cannot be told; added the error label",
            extra={"fields": {"emails": len(plan.several_from)}},
        )
    for email_id, why in plan.no_list.items():
        log.warning(f"{why}; added the error label", extra={"fields": {"email": email_id}})
    for sender, ids in plan.own.items():
        log.warning(
            "the sender is this account's own address: your own mail is never "
            "triaged; added the error label",
            extra={"fields": {"sender": sender, "emails": len(ids)}},
        )


async def add_error_label(
    jmap: JmapClient,
    boxes: MailboxMap,
    ids: list[str],
    result: PassResult,
    rehearsal: Rehearsal | None = None,
) -> None:
    """The error label on ``ids`` (a dry run only says so). Emails refusing it are
    logged and counted: the other senders must not wait on them."""
    if rehearsal is not None:
        rehearsal.said("would add the error label", ("flag", *sorted(ids)), {"emails": len(ids)})
        return
    patch = {eid: {f"mailboxIds/{boxes.error_label}": True} for eid in ids}
    outcome = await jmap.update_emails(patch)
    result.record(outcome)
    refused = {k: v for k, v in outcome.failures.items() if v.get("type") != "notFound"}
    if refused:
        result.unflagged += len(refused)
        error = JmapSetError("Email/set", "notUpdated", refused)
        log.warning(
            "emails refused the error label",
            extra={"fields": {"emails": len(refused), "error": str(error)}},
        )
