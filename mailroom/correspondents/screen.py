"""Which senders waiting in the Screener the user has written to, for a pass.

Who is waiting (the Screener's newest page) rides in the request the pass's
scan makes anyway, so an idle pass costs no request more (a server taking
fewer than five calls a request is read apart, and only when the Email state
moved). Only when some waiting senders were never asked about does one
request ask Sent about all of them together (an OR filter a few dozen senders
at a time, as many as one request carries; the rest wait for the next pass).
A sender asked about is not asked again while the service runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mailroom.account.categories import Category
from mailroom.account.mailboxes import MailboxMap
from mailroom.core.chunks import chunked
from mailroom.core.vocabulary import Trigger
from mailroom.correspondents.recipients import (
    PER_FILTER,
    RECIPIENT_FIELDS,
    sent_filters,
    written_to,
)
from mailroom.jmap.client import JmapClient
from mailroom.jmap.wire import Call, Responses, list_of_objects, page_of, query_ids, ref
from mailroom.ledger.store import Ledger
from mailroom.triage.scan import SenderWork, sender_of

log = logging.getLogger(__name__)

RIDER = "w"  # the prefix of the Screener calls riding in the scan request
MAX_CHECKED = 100_000  # senders remembered as asked about; past that, forgotten and asked again
SENT_LIMIT = 256  # Sent emails read back per filter


@dataclass(frozen=True)
class Waiting:
    sender: str
    name: str


class Correspondents:
    def __init__(self, jmap: JmapClient) -> None:
        self._jmap = jmap
        self._checked: set[str] = set()
        self._looked_at: str | None = None  # the Email state last looked at
        self.requests = 0  # made, for the tests and the bench

    async def written_to(
        self,
        screener: str,
        sent: str,
        email_state: str,
        skip: Iterable[str] | None = None,
        decided: Callable[[Iterable[str]], set[str]] | None = None,
        riders: Responses | None = None,
    ) -> list[Waiting]:
        """Senders waiting in ``screener`` whom mail in ``sent`` was addressed to,
        none of ``skip`` (the account's own, senders this pass triages anyway) nor
        of those ``decided`` (a callable: addresses -> those with a say already)."""
        if not sent or (email_state and email_state == self._looked_at):
            return []
        waiting = await self._waiting(screener, riders)
        skipped = set(skip or ())
        new = [s for s in waiting if s not in self._checked and s not in skipped]
        if new and decided is not None:
            had_say = decided(new)
            new = [s for s in new if s not in had_say]
        if not new:
            self._looked_at = email_state
            return []
        found, asked = await ask_sent(self._jmap, sent, new)
        self.requests += 1
        if len(self._checked) + len(asked) > MAX_CHECKED:
            self._checked.clear()
        # Those written to are not settled by being asked: until the ledger says
        # their decision is done (a failed or part-way one is tried again), each
        # pass looks at them again.
        self._checked |= asked - found
        # Asked about everyone, nobody to decide: the next pass with this state
        # reads nothing.
        self._looked_at = email_state if asked >= set(new) and not found else None
        return [Waiting(s, waiting[s]) for s in new if s in found]

    async def trusted(
        self,
        category: Category,
        boxes: MailboxMap,
        email_state: str,
        skip: Iterable[str],
        ledger: Ledger | None,
        riders: Responses | None = None,
    ) -> list[SenderWork]:
        """The pass's work for the senders the user wrote to (trigger ``sent``)."""
        decided = ledger.ever_decided if ledger is not None else None
        found = await self.written_to(
            boxes.screener, boxes.sent, email_state, skip, decided, riders
        )
        if found:
            log.info(
                "senders you wrote to are trusted",
                extra={"fields": {"senders": len(found), "category": category.name}},
            )
        return [SenderWork(w.sender, category, w.name, trigger=Trigger.SENT.value) for w in found]

    def riders(self, boxes: MailboxMap) -> list[Call]:
        """Who waits in the Screener (its newest page), to ride in the pass's scan
        request, where there is room for it beside the scan's own three calls."""
        jmap = self._jmap
        if not boxes.sent or jmap.session.max_calls_in_request < 5:
            return []
        return jmap.query_page_calls(
            {"inMailbox": boxes.screener},
            ["from"],
            position=0,
            limit=jmap.page_size(),
            prefix=RIDER,
            oldest_first=False,
        )

    async def _waiting(self, screener: str, riders: Responses | None) -> dict[str, str]:
        """sender -> display name, for the newest page of the Screener (read with
        the scan when it rode along, else now)."""
        jmap = self._jmap
        if riders is not None and riders.has(RIDER + "g"):
            size = jmap.page_size()
            page = page_of(
                riders.get(RIDER + "q", "Email/query"), riders.get(RIDER + "g", "Email/get"), size
            )
        else:
            page, _ = await jmap.query_page(
                {"inMailbox": screener},
                ["from"],
                position=0,
                limit=jmap.page_size(),
                oldest_first=False,
            )
            self.requests += 1
        out: dict[str, str] = {}
        for email in page.emails:
            found = sender_of(email)
            if found is not None:
                out.setdefault(found[0], found[1])
        return out


async def ask_sent(jmap: JmapClient, sent: str, senders: list[str]) -> tuple[set[str], set[str]]:
    """(those of ``senders`` written to, those asked about), in one request with
    as many filters as fit. A filter whose answer may be cut short (as many
    emails as asked for) settles only the senders it found; the rest are asked
    again another time."""
    room = jmap.session.max_calls_in_request // 2
    limit = min(SENT_LIMIT, jmap.page_size())
    if room < 1:  # one call a request: the first few senders, in two round trips
        chunk = senders[:PER_FILTER]
        (filter_,) = sent_filters(sent, chunk)
        page, _ = await jmap.query_page(filter_, list(RECIPIENT_FIELDS), position=0, limit=limit)
        hits = written_to(page.emails, chunk)
        return hits, (set(chunk) if page.last else hits)
    chunks = list(chunked(senders, PER_FILTER))[:room]
    calls: list[Call] = []
    for n, chunk in enumerate(chunks):
        (filter_,) = sent_filters(sent, chunk)
        calls += [
            Call("Email/query", {"filter": filter_, "limit": limit}, f"s{n}q"),
            Call(
                "Email/get",
                {
                    "#ids": ref(f"s{n}q", "Email/query", "/ids"),
                    "properties": list(RECIPIENT_FIELDS),
                },
                f"s{n}g",
            ),
        ]
    resp = await jmap.request(calls)
    found: set[str] = set()
    asked: set[str] = set()
    for n, chunk in enumerate(chunks):
        emails = list_of_objects(resp.get(f"s{n}g", "Email/get"), "Email/get")
        hits = written_to(emails, chunk)
        found |= hits
        whole = len(query_ids(resp.get(f"s{n}q", "Email/query"))) < limit
        asked |= set(chunk) if whole else hits
    return found, asked
