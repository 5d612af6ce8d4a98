"""``@ToScreener`` from the phone: a sender put back in the Screener by a pass.

What ``mailroom undo`` all the way back would do, carried out by the pass
that finds the label: each of the sender's decisions still standing is taken
back, newest first, a batched round per level (a sender re-triaged twice
needs three rounds; most need one). The label comes off last, and only for a
sender now all the way back, so anything that fails is seen again by the
next pass. A sender Mailroom never decided (nothing in the ledger) gets the
error label: there is nothing to take back, and the user should know; one
whose decisions are all taken back already just loses the label.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mailroom.account.mailboxes import MailboxMap
from mailroom.contacts.book import ContactBook
from mailroom.core.vocabulary import Trigger
from mailroom.core.words import count
from mailroom.jmap.client import JmapClient
from mailroom.ledger.reading import TRAIL, Filter
from mailroom.ledger.store import Ledger
from mailroom.takeback.apply import TakeBack
from mailroom.takeback.plan import undoable
from mailroom.triage.records import PassResult
from mailroom.triage.refile import patch_for
from mailroom.triage.rehearsal import Rehearsal
from mailroom.triage.steps import Flag

log = logging.getLogger(__name__)

MAX_ROUNDS = 20  # levels taken back in one pass; a deeper trail goes on next pass

Labelled = Mapping[str, Mapping[str, frozenset[str]]]  # sender -> email id -> mailbox ids


@dataclass
class SendBack:
    jmap: JmapClient
    book: ContactBook
    boxes: MailboxMap
    ledger: Ledger | None
    flag: Flag
    rehearsal: Rehearsal | None = None  # a dry run: say, never write

    async def run(self, labelled: Labelled, trigger: Trigger, result: PassResult) -> None:
        if not labelled:
            return
        if self.ledger is None:
            if self.rehearsal is not None:
                self._rehearse(labelled)
            else:  # no ledger, no record of what to take back
                await self.flag(sorted(e for emails in labelled.values() for e in emails), result)
            return
        ledger = self.ledger
        # Labels are never put back or off by the rounds: @ToScreener stays on
        # its email until the sender is all the way back, and comes off last.
        takeback = TakeBack(self.jmap, self.book, self.boxes, self._labels())
        # Nothing in the ledger at all: nothing to take back, and the user should
        # know. Decisions all taken back already: the sender is back; label off.
        never = [s for s in labelled if not self._trail(s)]
        failed: dict[str, str] = {}
        now: dict[str, frozenset[str]] = {}  # where a restore put a labelled email
        for _ in range(MAX_ROUNDS):
            decisions = [
                d
                for s in labelled
                if s not in failed and s not in never
                if (d := undoable(self._trail(s))) is not None
            ]
            if not decisions:
                break
            plans = await takeback.plan(decisions, ledger)
            for r in await takeback.apply(plans, ledger, trigger):
                if r.error is not None:
                    failed[r.plan.sender] = r.error
                else:
                    for eid, move in r.plan.restore.items():
                        now[eid] = move.after
        back = [
            s
            for s in labelled
            if s not in failed and s not in never and undoable(self._trail(s)) is None
        ]
        await self._unlabel({s: labelled[s] for s in back}, now, result)
        if never:
            log.warning(
                "back-to-Screener label on a sender Mailroom never decided: error label",
                extra={"fields": {"senders": len(never)}},
            )
            await self.flag(sorted(e for s in never for e in labelled[s]), result)
        for sender, why in failed.items():
            result.failures += 1
            result.last_error = why
            log.warning(
                "could not put sender back in the Screener; the label stays",
                extra={"fields": {"sender": sender, "error": why}},
            )
        for sender in back:
            result.sent_back += 1
            log.info("sender back in the Screener", extra={"fields": {"sender": sender}})

    def _trail(self, sender: str) -> list[Any]:
        assert self.ledger is not None
        return self.ledger.history(Filter(sender, limit=TRAIL))

    def _labels(self) -> frozenset[str]:
        b = self.boxes
        return frozenset({*b.labels.values(), b.error_label, *b.extra_labels} - {""})

    async def _unlabel(
        self, labelled: Labelled, now: Mapping[str, frozenset[str]], result: PassResult
    ) -> None:
        """The label off, last (``now``: where the rounds put the labelled emails
        they restored); an email holding nothing else goes to the Screener, never
        to no mailbox."""
        label = self.boxes.back_label
        patches: dict[str, dict[str, Any]] = {}
        for emails in labelled.values():
            for eid, scanned in emails.items():
                boxes = now.get(eid, scanned)
                if label not in boxes:
                    continue
                remaining = (boxes - {label}) or frozenset({self.boxes.screener})
                patches[eid] = patch_for(boxes, remaining)
        if not patches:
            return
        outcome = await self.jmap.move_emails(patches)
        result.record(outcome)
        refused = {k: v for k, v in outcome.failures.items() if v.get("type") != "notFound"}
        if refused:
            result.failures += 1
            result.last_error = f"{count(len(refused), 'email')} kept the back-to-Screener label"

    def _rehearse(self, labelled: Labelled) -> None:
        assert self.rehearsal is not None
        for sender, emails in labelled.items():
            self.rehearsal.said(
                "dry run: would put sender back in the Screener",
                ("back", sender, *sorted(emails)),
                {"sender": sender},
            )
