"""The Screener workflow: one idempotent pass over JMAP and the contact book.

A pass (``run_pass``) scans every triage-label mailbox in one request
(``labelled.py``), flags what cannot be triaged (conflicting labels, no or
several senders, the user's own mail), then takes the labelled senders
through the pass's steps (``steps.py``): look up, find their mail, write
contacts and groups, re-file, and only then take the labels off, so anything
that fails is simply seen again by the next pass. A pass with nothing to do
is exactly one HTTP request. The workflow never creates anything in the
account (``account/provisioning.py`` does, on the user's word).
"""

from __future__ import annotations

import logging

from mailroom.account.categories import Category
from mailroom.account.config import TriageConfig
from mailroom.account.mailboxes import (
    MailboxMap,
    SetupError,
    map_mailboxes,
)
from mailroom.account.own import OwnAddresses, read_own
from mailroom.account.provisioning import Provisioner
from mailroom.account.review import SETUP_HINT, missing_message
from mailroom.contacts.book import ContactBook
from mailroom.core.vocabulary import Trigger
from mailroom.correspondents.screen import Correspondents
from mailroom.domains.rules import DomainRules, rehearse_domains
from mailroom.jmap.client import JmapClient
from mailroom.jmap.wire import Call
from mailroom.ledger.model import Decision
from mailroom.ledger.store import Ledger
from mailroom.lists.filing import Filed, file_by_rules, file_list, waiting_of
from mailroom.takeback.sendback import SendBack
from mailroom.triage.bookkeeping import Bookkeeper, settle_stale
from mailroom.triage.flagging import add_error_label, flag_untriageable
from mailroom.triage.labelled import Scan, scan_labels
from mailroom.triage.records import PassResult, SenderRecord
from mailroom.triage.rehearsal import Rehearsal
from mailroom.triage.scan import ListWork, ScanPlan, SenderWork, plan_scan
from mailroom.triage.steps import (
    Pass,
    find_mail,
    look_up,
    one_category_per_contact,
    refile,
    unlabel,
    write_contacts,
)

__all__ = ["AccountConflict", "PassResult", "SetupError", "Triage", "TriageConfig"]

log = logging.getLogger(__name__)


class AccountConflict(SetupError):
    """The account cannot serve the settings (something missing, a label that is a
    role mailbox): the user must act, retrying cannot help. Start-up exits 2."""


def missing_message_parts(parts: list[str]) -> str:
    return f"missing in the account: {', '.join(parts)}; {SETUP_HINT}"


class Triage:
    def __init__(
        self,
        jmap: JmapClient,
        book: ContactBook,
        config: TriageConfig,
        *,
        dry_run: bool = False,
        ledger: Ledger | None = None,
    ) -> None:
        if dry_run and ledger is not None:
            raise ValueError("a dry run writes nothing, the ledger included")
        self._jmap = jmap
        self._ledger = ledger
        self._book = book
        self._config = config
        self._boxes: MailboxMap | None = None
        self._groups_stale = False
        self._own: frozenset[str] = frozenset()  # the account's own addresses
        self.dry_run = dry_run
        self._rehearsal = Rehearsal()
        self._correspondents = Correspondents(jmap)

    @property
    def config(self) -> TriageConfig:
        return self._config

    @property
    def mailboxes(self) -> MailboxMap:
        if self._boxes is None:
            raise RuntimeError("Triage.setup() has not run")
        return self._boxes

    # -- setup ------------------------------------------------------------------

    async def setup(self) -> None:
        """Resolve mailboxes and contact groups; never creates anything.

        Raises AccountConflict (start-up stops, exit 2) when the account lacks
        what the settings need or a label is a role mailbox.
        """
        review = await Provisioner(self._jmap, self._book, self._config).review()
        if review.conflicts:
            raise AccountConflict("; ".join(review.conflicts))
        if review.blocking:
            raise AccountConflict(missing_message(review.blocking))
        for need in review.missing:
            log.warning(
                "label missing: its feature is off until setup makes it",
                extra={"fields": {"label": need.name, "purpose": need.purpose, "fix": SETUP_HINT}},
            )
        mailboxes, _ = await self._jmap.get_mailboxes()
        self._boxes = map_mailboxes(self._config, mailboxes)
        self._own = (await self.own_addresses()).all

    @property
    def own(self) -> frozenset[str]:
        """The account's own addresses (known once set up)."""
        return self._own

    async def own_addresses(self) -> OwnAddresses:
        """The account's own addresses, never triaged, with where each came from."""
        sent = self._boxes.sent if self._boxes is not None else None
        return await read_own(self._jmap, self._config.own_addresses, sent)

    def _broken(self, category: Category) -> list[str]:
        """What this category needs that the account lost, as message parts."""
        boxes = self.mailboxes
        out = []
        for c in self._config.categories.chain(category):
            if c.destination in boxes.missing:
                out.append(f"mailbox {c.destination!r}")
            if c.contact_group not in self._book.groups:
                out.append(f"contact group {c.contact_group!r}")
        return out

    # -- poll -------------------------------------------------------------------

    async def run_pass(self, trigger: Trigger = Trigger.FALLBACK) -> PassResult:
        result = PassResult()
        scan = await scan_labels(self._jmap, self._config, self.mailboxes, self._riders)
        self._boxes, result.seen_states = scan.mailboxes, scan.states
        emails = scan.emails
        result.off.update(self.mailboxes.off)
        plan = plan_scan(emails, self.mailboxes, self._config.categories, self._own)
        works = await self._with_domains(plan, trigger, result)
        works += await self._trusted(plan, works, scan)
        if not self.dry_run:
            await self._lists(plan, trigger)
        # Before anything is written: a ledger that cannot take the intents stops here.
        bookkeeper = self._bookkeeper(trigger)
        bookkeeper.intents(works)
        if plan.skipped:
            log.debug(
                "skipped emails with the error label", extra={"fields": {"count": plan.skipped}}
            )
        await flag_untriageable(plan, result, self.mailboxes, self._config.error_label, self._flag)
        await self._decide(works, bookkeeper, result)
        rehearsal = self._rehearsal if self.dry_run else None
        await SendBack(
            self._jmap, self._book, self.mailboxes, self._ledger, self._flag, rehearsal
        ).run(plan.back, trigger, result)
        if not self.dry_run:
            await settle_stale(self._jmap, bookkeeper, {*plan.senders, *plan.conflicts})
        return result

    async def decide(
        self, sender: str, category: Category, trigger: Trigger = Trigger.CLI
    ) -> tuple[PassResult, list[SenderRecord]]:
        """``mailroom triage``: one sender into ``category`` without a labelled email,
        by the pass's own steps (its writes are the same conditional ones, so it is
        safe beside the running service). Never the account's own address."""
        sender = sender.strip().lower()
        if sender in self._own:
            raise AccountConflict(
                f"{sender} is this account's own address: your own mail is never triaged"
            )
        result = PassResult()
        work = SenderWork(sender, category, "")
        bookkeeper = self._bookkeeper(trigger)
        bookkeeper.intents([work])
        return result, await self._decide([work], bookkeeper, result)

    async def _with_domains(
        self, plan: ScanPlan, trigger: Trigger, result: PassResult
    ) -> list[SenderWork]:
        if self._ledger is None:  # a dry run: only said
            return rehearse_domains(plan, self._rehearsal)
        rules = DomainRules(self._jmap, self._ledger, self.mailboxes, self._config.categories)
        return await rules.works(plan, trigger.value, self._own, self._flag, result)

    async def _trusted(
        self, plan: ScanPlan, works: list[SenderWork], scan: Scan
    ) -> list[SenderWork]:
        """Senders waiting whom the user wrote to, when MAILROOM_TRUST_SENT names a category."""
        name = self._config.trust_sent
        if name is None:
            return []
        skip = {*self._own, *plan.senders, *plan.conflicts, *plan.back, *(w.sender for w in works)}
        category = self._config.categories.by_name(name)
        state = scan.states.get("Email", "")
        return await self._correspondents.trusted(
            category, self.mailboxes, state, skip, self._ledger, scan.riders
        )

    async def _lists(self, plan: ScanPlan, trigger: Trigger) -> None:
        """Lists decided by label now, then new mail of lists decided before."""
        jmap, boxes, categories = self._jmap, self.mailboxes, self._config.categories
        for listed in plan.lists.values():
            await file_list(jmap, boxes, categories, self._ledger, listed, trigger.value)
        if self._ledger is not None:
            await file_by_rules(jmap, boxes, categories, self._ledger, trigger.value)

    async def decide_list(
        self, ident: str, category: Category, trigger: Trigger = Trigger.CLI
    ) -> Filed:
        """``mailroom triage list:<id>`` or the Screener page: every email of the
        list waiting in the Screener filed, and the rule kept for later posts (a
        dry run moves nothing: how many would be filed)."""
        if self.dry_run:
            return Filed(await waiting_of(self._jmap, self.mailboxes, ident))
        work = ListWork(ident, category)
        categories = self._config.categories
        return await file_list(
            self._jmap,
            self.mailboxes,
            categories,
            self._ledger,
            work,
            trigger.value,
            by_label=False,
        )

    def _riders(self, boxes: MailboxMap) -> list[Call]:
        """Calls for the scan's request: who waits in the Screener, when trusting."""
        return [] if self._config.trust_sent is None else self._correspondents.riders(boxes)

    async def decide_domain(
        self, domain: str, category: Category, ledger: Ledger, trigger: Trigger = Trigger.CLI
    ) -> tuple[Decision | None, list[SenderRecord]]:
        """``mailroom triage @DOMAIN``: the rule, then every sender of the domain
        waiting in the Screener by the pass's steps (``ledger``: this one's, or
        one only read in a dry run, to leave out senders decided on their own)."""
        rules = DomainRules(self._jmap, ledger, self.mailboxes, self._config.categories)
        rule, works = await rules.decide(
            domain, category, self._own, apply=not self.dry_run, trigger=trigger.value
        )
        bookkeeper = self._bookkeeper(trigger)
        bookkeeper.intents(works)
        return rule, await self._decide(works, bookkeeper, PassResult())

    def _bookkeeper(self, trigger: Trigger) -> Bookkeeper:
        return Bookkeeper(
            self._ledger, trigger.value, self._config.categories, self.mailboxes.names
        )

    async def _decide(
        self, works: list[SenderWork], bookkeeper: Bookkeeper, result: PassResult
    ) -> list[SenderRecord]:
        """The senders through the pass's steps; every sender's record, however it ended."""
        groups = self._config.categories.contact_groups
        if self._groups_stale or any(g not in self._book.groups for g in groups):
            # A managed group vanished: look again every pass until it is back
            # (never recreate it: that is `mailroom setup --apply`'s job, on
            # the user's word, and may run in another process).
            self._groups_stale = False
            await self._book.find_groups(groups)
        result.missing.update(f"mailbox {n!r}" for n in self.mailboxes.missing)
        result.missing.update(f"contact group {g!r}" for g in groups if g not in self._book.groups)
        everyone = [SenderRecord(work) for work in works]
        p = Pass(
            self._jmap,
            self._book,
            self._config.categories,
            self.mailboxes,
            result,
            self._flag,
            planned_uids=bookkeeper.planned_uids(r.work.sender for r in everyone),
            lists=frozenset(self._ledger.list_rules()) if self._ledger is not None else frozenset(),
        )
        records: list[SenderRecord] = []
        for record in everyone:
            broken = self._broken(record.work.category)
            if broken:
                name = record.work.category.name
                p.fail(record, None, f"{name}: {missing_message_parts(broken)}")
            else:
                records.append(record)
        for step in (look_up, one_category_per_contact, find_mail):
            records = await step(p, records) if records else records
        bookkeeper.planned(records)
        if self.dry_run:
            for record in records:
                self._rehearsal.rehearse(record)
            return everyone
        for step in (write_contacts, refile, unlabel):
            records = await step(p, records) if records else records
        self._groups_stale = p.groups_stale
        bookkeeper.outcomes(everyone)
        for record in records:
            category = record.work.category.name
            result.triaged[category] += 1
            result.senders.append((record.sender, category))
            result.emails_refiled += len(record.refiled)
            log.info(
                "triaged sender",
                extra={
                    "fields": {
                        "sender": record.sender,
                        "category": category,
                        "emails_refiled": len(record.refiled),
                    }
                },
            )
        return everyone

    async def _flag(self, ids: list[str], result: PassResult) -> None:
        rehearsal = self._rehearsal if self.dry_run else None
        await add_error_label(self._jmap, self.mailboxes, ids, result, rehearsal)
