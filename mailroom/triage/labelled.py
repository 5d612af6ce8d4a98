"""The scan's IO: every email in a triage-label mailbox, read with the
account's mailboxes in one request when there are few.

The mailboxes come back with the emails, so a label or destination renamed,
deleted or recreated since the last pass is noticed and resolved again
before anything is decided on stale ids.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mailroom.account.config import TriageConfig
from mailroom.account.mailboxes import MailboxMap, map_mailboxes, still_valid
from mailroom.jmap.client import JmapClient
from mailroom.jmap.errors import JmapProtocolError
from mailroom.jmap.wire import Call, Responses
from mailroom.triage.steps import EMAIL_PROPERTIES, PAGES_AT_ONCE

log = logging.getLogger(__name__)

MAILBOX_PROPERTIES = ["id", "name", "parentId", "role"]


@dataclass(frozen=True)
class Scan:
    emails: list[dict[str, Any]]
    mailboxes: MailboxMap  # as resolved against this scan's mailboxes
    states: dict[str, str]  # the Mailbox and Email states the scan saw
    # The answers to calls that rode along (``also``); None when they found no room.
    riders: Responses | None = None


async def scan_labels(
    jmap: JmapClient,
    config: TriageConfig,
    boxes: MailboxMap,
    also: Callable[[MailboxMap], Sequence[Call]] = lambda _: (),
) -> Scan:
    """Every email in a triage-label mailbox; one request when there are few.
    ``also``: calls to send in that request when there is room (given the
    mailboxes), their answers in ``Scan.riders``."""
    for _attempt in range(2):
        label_filter = {
            "operator": "OR",
            "conditions": [
                {"inMailbox": m} for m in (*boxes.labels.values(), boxes.back_label) if m
            ],
        }
        mailbox_call = Call("Mailbox/get", {"ids": None, "properties": MAILBOX_PROPERTIES}, "m")
        page, resp = await jmap.query_page(
            label_filter,
            EMAIL_PROPERTIES,
            position=0,
            limit=jmap.page_size(),
            before=[mailbox_call, *also(boxes)],
        )
        riders = resp
        if resp is None:  # maxCallsInRequest too low: the mailboxes on their own
            resp = await jmap.request([mailbox_call])
        mailbox_get = resp.get("m", "Mailbox/get")
        mailboxes = mailbox_get.get("list")
        if not isinstance(mailboxes, list) or not all(isinstance(m, dict) for m in mailboxes):
            raise JmapProtocolError("Mailbox/get: 'list' is not a list of objects")
        if not still_valid(config, boxes, mailboxes):
            # A label or destination was renamed, deleted or recreated.
            log.info("mailboxes changed; resolving them again")
            boxes = map_mailboxes(config, mailboxes)
            continue
        states = {"Mailbox": str(mailbox_get.get("state", "")), "Email": page.state}
        emails = list(page.emails)
        if not page.last:
            # More than a page labelled at once: fetch the rest by position.
            async for more in jmap.pages(
                label_filter,
                EMAIL_PROPERTIES,
                position=len(page.ids),
                per_request=PAGES_AT_ONCE,
            ):
                emails.extend(more.emails)
        return Scan(emails, boxes, states, riders)
    raise JmapProtocolError("mailboxes keep changing during the scan")
