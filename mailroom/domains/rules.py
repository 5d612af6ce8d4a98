"""Whole-domain decisions in a pass: new rules from labels, and the senders rules triage.

Fastmail's contact-group rules match addresses, not domains, so a domain
decision is Mailroom's to carry out: each pass with rules in force asks for
the Screener's mail from those domains (one query whatever the number of
rules, none without rules) and triages each new sender of a ruled domain to
the rule's category, by the pass's own steps. A sender with a decision of its
own (a label, ``mailroom triage``, an undo of it alone) is never triaged by a
rule: a single address wins over its domain. The most specific rule wins.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from mailroom.account.categories import Categories, Category
from mailroom.account.mailboxes import MailboxMap
from mailroom.domains.names import domain_of, refusal, registrable, rule_for
from mailroom.jmap.client import JmapClient
from mailroom.jmap.wire import any_of_chunks
from mailroom.ledger.model import Decision, DecisionKind, Effects, Intent
from mailroom.ledger.reading import TRAIL, Filter
from mailroom.ledger.store import Ledger
from mailroom.triage.records import PassResult
from mailroom.triage.rehearsal import Rehearsal
from mailroom.triage.scan import ScanPlan, SenderWork, mailbox_ids_of, sender_of
from mailroom.triage.steps import EMAIL_PROPERTIES, PAGES_AT_ONCE, Flag

log = logging.getLogger(__name__)


@dataclass
class Ruling:
    """What the rules decide in one pass."""

    works: list[SenderWork] = field(default_factory=list)  # senders the rules triage
    refused: dict[str, str] = field(default_factory=dict)  # labelled sender -> why


@dataclass
class DomainRules:
    jmap: JmapClient
    ledger: Ledger
    boxes: MailboxMap
    categories: Categories

    def record(self, domain: str, category: Category, trigger: str) -> Decision:
        """The domain decision (the rule), recorded done before any sender is
        triaged by it; the rule in force for the domain if it already says so."""
        current = self.ledger.domain_rules().get(domain)
        if current is not None and current.intent.category == category.name:
            return current
        (rule_id,) = self.ledger.begin(
            [
                Intent(
                    subject=f"@{domain}",
                    kind=DecisionKind.TRIAGE,
                    category=category.name,
                    trigger=trigger,
                )
            ]
        )
        previous = current.intent.category if current is not None else None
        self.ledger.plan({rule_id: Effects(previous=previous)})
        self.ledger.finish([rule_id])
        log.info(
            "decided for a whole domain",
            extra={"fields": {"domain": domain, "category": category.name, "trigger": trigger}},
        )
        decision = self.ledger.decision(rule_id)
        assert decision is not None
        return decision

    async def works(
        self,
        plan: ScanPlan,
        trigger: str,
        own: frozenset[str],
        flag: Flag,
        result: PassResult,
    ) -> list[SenderWork]:
        """The labelled senders, and the senders whole-domain rules triage now.

        The rules ``@WholeDomain`` labels ask for are recorded first (a refused
        domain flags its sender); the rules in force then cost one query, and
        nothing at all when there are none."""
        works = list(plan.senders.values())
        ruling = self.from_labels(works, trigger)
        if ruling.refused:
            for sender, why in ruling.refused.items():
                log.warning(
                    "whole-domain decision refused; error label",
                    extra={"fields": {"sender": sender, "error": why}},
                )
                result.conflicts += 1
            await flag(sorted(e for s in ruling.refused for e in plan.senders[s].emails), result)
            works = [w for w in works if w.sender not in ruling.refused]
        taken = frozenset({*plan.senders, *plan.conflicts, *plan.back})
        return works + await self.senders(taken, own)

    def from_labels(self, works: Collection[SenderWork], trigger: str) -> Ruling:
        """Rules for the senders labelled ``@WholeDomain`` (their registrable domain);
        a refused domain (public suffix, shared provider) fails its sender."""
        out = Ruling()
        for work in works:
            if not work.whole_domain:
                continue
            domain = registrable(domain_of(work.sender))
            why = refusal(domain)
            if why is not None:
                out.refused[work.sender] = f"whole-domain decision refused: {why}"
                continue
            work.rule = self.record(domain, work.category, trigger).id
        return out

    async def senders(
        self, taken: frozenset[str], own: frozenset[str], only: str | None = None
    ) -> list[SenderWork]:
        """The senders the rules in force triage now (``only``: that domain's rule):
        new senders with mail in the Screener, and those an earlier rule of a
        re-decided domain put elsewhere. ``taken``: senders this pass decides anyway."""
        rules = self._usable(self.ledger.domain_rules())
        if only is not None:
            rules = {d: r for d, r in rules.items() if d == only}
        if not rules:
            return []
        found: dict[str, SenderWork] = {}
        screener = {
            s: n for s, n in (await self._in_screener(list(rules))).items() if s not in taken | own
        }
        decided = self.ledger.decided(screener)
        for sender, name in screener.items():
            hit = rule_for(sender, rules)
            if hit is not None and sender not in decided:
                found[sender] = self._work(sender, name, hit[1])
        # A domain decided again: the senders its earlier rule triaged follow it.
        for d in self.ledger.ruled_by(self._earlier_rules(rules)):
            sender = d.intent.subject
            hit = rule_for(sender, rules)
            if hit is not None and sender not in taken | own:
                found.setdefault(sender, self._work(sender, "", hit[1]))
        return [w for _, w in sorted(found.items())]

    async def decide(
        self,
        domain: str,
        category: Category,
        own: frozenset[str],
        *,
        apply: bool,
        trigger: str = "cli",
    ) -> tuple[Decision | None, list[SenderWork]]:
        """``mailroom triage @DOMAIN CATEGORY``: the rule (recorded when applied)
        and the senders it triages now; a dry run only reads."""
        if apply:
            rule = self.record(domain, category, trigger)
            return rule, await self.senders(frozenset(), own, only=domain)
        screener = {s: n for s, n in (await self._in_screener([domain])).items() if s not in own}
        decided = self.ledger.decided(screener)
        return None, [
            SenderWork(s, category, n) for s, n in sorted(screener.items()) if s not in decided
        ]

    def _usable(self, rules: Mapping[str, Decision]) -> dict[str, Decision]:
        """The rules whose category the settings still have; the others wait
        (a category renamed or removed: ``undo @domain``, or bring it back)."""
        names = {c.name for c in self.categories}
        stale = sorted(d for d, r in rules.items() if r.intent.category not in names)
        if stale:
            log.warning(
                "domain rules for a category the settings no longer have are not applied",
                extra={"fields": {"domains": ",".join(stale[:10]), "count": len(stale)}},
            )
        return {d: r for d, r in rules.items() if d not in stale}

    def _work(self, sender: str, name: str, rule: Decision) -> SenderWork:
        category = self.categories.by_name(str(rule.intent.category))
        return SenderWork(sender, category, name, rule=rule.id)

    def _earlier_rules(self, rules: Mapping[str, Decision]) -> list[int]:
        """The rules that the ones in force replaced (a domain decided again)."""
        out: list[int] = []
        for domain, rule in rules.items():
            if rule.effects.previous is None:
                continue
            for d in self.ledger.history(Filter(f"@{domain}", limit=TRAIL, exact=True)):
                if d.id != rule.id and d.intent.kind is DecisionKind.TRIAGE:
                    out.append(d.id)
        return out

    async def _in_screener(self, rules: Collection[str]) -> dict[str, str]:
        """Senders (address -> display name) with mail in the Screener from a ruled
        domain: one query for every rule (``from`` is a text match; the domain is
        confirmed here)."""
        out: dict[str, str] = {}
        for any_domain in any_of_chunks([{"from": d} for d in sorted(rules)]):
            filter_ = {
                "operator": "AND",
                "conditions": [{"inMailbox": self.boxes.screener}, any_domain],
            }
            emails = await self.jmap.query_emails(
                filter_, EMAIL_PROPERTIES, per_request=PAGES_AT_ONCE
            )
            for email in emails:
                who = sender_of(email)
                if who is None or self.boxes.error_label in mailbox_ids_of(email):
                    continue
                if not out.get(who[0]):
                    out[who[0]] = who[1]
        return out


def rehearse_domains(plan: ScanPlan, rehearsal: Rehearsal) -> list[SenderWork]:
    """A dry run (no ledger, so no rules): say what a whole-domain label would do."""
    works = list(plan.senders.values())
    for w in works:
        if w.whole_domain:
            rehearsal.said(
                "dry run: would decide for the sender's whole domain",
                ("domain", w.sender, w.category.name),
                {"sender": w.sender, "category": w.category.name},
            )
    return works
