"""The Screener workflow: one idempotent ``poll()`` over JMAP and CardDAV.

A poll scans every triage-label mailbox in one request. For each sender it
puts the contact in the category's groups, re-files all their mail, and only
then takes the triage label off, so anything that fails is simply seen again
by the next poll. A poll with nothing to do is exactly one HTTP request.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mailroom.contacts import uids
from mailroom.contacts.book import (
    Change,
    ContactBook,
    ContactsAuthError,
    ContactsError,
    GroupMissingError,
    Known,
    Want,
)
from mailroom.jmap.client import Call, JmapClient, SetOutcome, any_of_chunks
from mailroom.jmap.errors import JmapAuthError, JmapError, JmapProtocolError, JmapSetError
from mailroom.triage.account import (
    SETUP_HINT,
    AccountReview,
    Need,
    NeedKind,
    missing_message,
    review_account,
)
from mailroom.triage.categories import Categories, Category
from mailroom.triage.planning import (
    MailboxMap,
    SenderWork,
    mailbox_ids_of,
    plan_groups,
    plan_label_removal,
    plan_refile,
    plan_scan,
    resolve_mailboxes,
    sender_of,
    target_mailboxes,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
# Failures the servers can cause: logged without a traceback.
EXPECTED_ERRORS = (JmapError, ContactsError)

EMAIL_PROPERTIES = ("id", "from", "mailboxIds")
# Pages of a long result asked in one request (within maxCallsInRequest): a
# large labelling costs round trips / PAGES_AT_ONCE.
PAGES_AT_ONCE = 4
MAILBOX_PROPERTIES = ["id", "name", "parentId", "role"]


class SetupError(Exception):
    """The account is not set up the way Mailroom needs (e.g. no Screener)."""


class AccountConflict(SetupError):
    """The account cannot serve the settings (something missing, a label that is a
    role mailbox): the user must act, retrying cannot help. Start-up exits 2."""


def missing_message_parts(parts: list[str]) -> str:
    return f"missing in the account: {', '.join(parts)}; {SETUP_HINT}"


@dataclass(frozen=True)
class TriageConfig:
    categories: Categories
    screener_mailbox: str
    error_label: str


@dataclass
class PollResult:
    """What one poll did, and the JMAP states it saw and produced."""

    triaged: Counter[str] = field(default_factory=Counter)  # category -> senders
    senders: list[tuple[str, str]] = field(default_factory=list)  # (address, category)
    emails_refiled: int = 0
    conflicts: int = 0  # senders whose emails got the error label
    failures: int = 0  # senders left for the next poll
    unflagged: int = 0  # emails that refused the error label
    missing: set[str] = field(default_factory=set)  # what the account lost, for /health
    last_error: str | None = None  # of the last sender that failed
    # States the server reported when the scan ran, and those Mailroom's own
    # writes produced: push events carrying only the latter are echoes.
    seen_states: dict[str, str] = field(default_factory=dict)
    own_states: dict[str, set[str]] = field(
        default_factory=lambda: {"Email": set(), "Mailbox": set()}
    )

    @property
    def senders_triaged(self) -> int:
        return sum(self.triaged.values())

    def record(self, outcome: SetOutcome) -> None:
        if outcome.new_state is not None:
            self.own_states["Email"].add(outcome.new_state)
        if outcome.mailbox_state is not None:
            self.own_states["Mailbox"].add(outcome.mailbox_state)


REHEARSALS_KEPT = 10_000  # plans already logged in a dry run (then DEBUG)


class Triage:
    def __init__(
        self, jmap: JmapClient, book: ContactBook, config: TriageConfig, *, dry_run: bool = False
    ) -> None:
        self._jmap = jmap
        self._book = book
        self._config = config
        self._boxes: MailboxMap | None = None
        self._groups_stale = False
        self._own: frozenset[str] = frozenset()  # the account's own addresses
        self.dry_run = dry_run
        self._rehearsed: set[tuple[str, ...]] = set()

    @property
    def mailboxes(self) -> MailboxMap:
        if self._boxes is None:
            raise RuntimeError("Triage.setup() has not run")
        return self._boxes

    # -- setup ------------------------------------------------------------------

    def _names(self) -> list[str]:
        cats = self._config.categories
        return [
            self._config.screener_mailbox,
            self._config.error_label,
            *cats.labels,
            *cats.destinations,
        ]

    async def review(self) -> AccountReview:
        """What the settings need and the account has (reads only)."""
        cfg = self._config
        mailboxes, _ = await self._jmap.get_mailboxes()
        groups = await self._book.find_groups(cfg.categories.contact_groups)
        return review_account(
            categories=cfg.categories,
            screener=cfg.screener_mailbox,
            error_label=cfg.error_label,
            mailboxes=mailboxes,
            groups=groups,
        )

    async def setup(self) -> None:
        """Resolve mailboxes and contact groups; never creates anything.

        Raises AccountConflict (start-up stops, exit 2) when the account lacks
        what the settings need or a label is a role mailbox.
        """
        review = await self.review()
        if review.conflicts:
            raise AccountConflict("; ".join(review.conflicts))
        if review.missing:
            raise AccountConflict(missing_message(review.missing))
        mailboxes, _ = await self._jmap.get_mailboxes()
        self._boxes = self._resolve(mailboxes)
        self._own = await self.own_addresses()

    async def own_addresses(self) -> frozenset[str]:
        """The account's own addresses, never triaged; the username alone if identities fail."""
        try:
            return await self._jmap.own_addresses()
        except JmapAuthError:
            raise
        except JmapError as exc:
            log.warning(
                "cannot read the account's identities; only its username counts as its own",
                extra={"fields": {"error": str(exc)}},
            )
            name = self._jmap.session.username.lower()
            return frozenset({name} if "@" in name else set())

    async def provision(self, *, create_screener: bool = False) -> list[tuple[Need, str | None]]:
        """Create what the account lacks; returns each missing need and its error.

        The Screener is the user's own (their rules file mail there), so it is
        made only when asked.
        """
        review = await self.review()
        done: list[tuple[Need, str | None]] = []
        for need in review.missing:
            if need.purpose == "the Screener" and not create_screener:
                done.append((need, "not created: pass --create-screener, or make it yourself"))
                continue
            try:
                if need.kind is NeedKind.MAILBOX:
                    await self._jmap.create_mailbox(need.name)
                else:
                    await self._book.create_group(need.name)
            except (JmapError, ContactsError) as exc:
                done.append((need, str(exc)))
                continue
            log.info("created", extra={"fields": {"what": str(need)}})
            done.append((need, None))
        return done

    def _resolve(self, mailboxes: list[dict[str, Any]]) -> MailboxMap:
        cfg = self._config
        res = resolve_mailboxes(mailboxes, self._names())
        if cfg.screener_mailbox in res.missing:
            raise SetupError(
                f"no mailbox named {cfg.screener_mailbox!r} (the Screener): create it, and a "
                "rule that files mail from unknown senders there"
            )
        if res.inbox is None:
            raise SetupError("the account has no Inbox (no mailbox with role 'inbox')")
        found = res.found
        return MailboxMap(
            inbox=res.inbox,
            screener=found[cfg.screener_mailbox],
            error_label=found.get(cfg.error_label, ""),
            labels={c.name: found[c.label] for c in cfg.categories if c.label in found},
            destinations={d: found[d] for d in cfg.categories.destinations if d in found},
            excluded=res.excluded,
            missing=frozenset(res.missing),
        )

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

    def _still_valid(self, mailboxes: list[dict[str, Any]]) -> bool:
        boxes = self.mailboxes
        res = resolve_mailboxes(mailboxes, self._names())
        expected = {
            self._config.screener_mailbox: boxes.screener,
            self._config.error_label: boxes.error_label,
            **{c.label: boxes.labels.get(c.name, "") for c in self._config.categories},
            **{d: boxes.destinations.get(d, "") for d in self._config.categories.destinations},
        }
        return all(res.found.get(n, "") == i for n, i in expected.items())

    # -- poll -------------------------------------------------------------------

    async def poll(self) -> PollResult:
        result = PollResult()
        emails = await self._scan(result)
        plan = plan_scan(emails, self.mailboxes, self._config.categories, self._own)
        if plan.skipped:
            log.debug(
                "skipped emails with the error label", extra={"fields": {"count": plan.skipped}}
            )
        own = [eid for ids in plan.own.values() for eid in ids]
        flagged = [
            *(eid for ids in plan.conflicts.values() for eid in ids),
            *plan.unreadable,
            *plan.several_from,
            *own,
        ]
        if flagged and not self.mailboxes.error_label:
            result.unflagged += len(flagged)
            log.error(
                "cannot add the error label: it is missing",
                extra={"fields": {"emails": len(flagged), "label": self._config.error_label}},
            )
        elif flagged:
            await self._flag(flagged, result)
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
            for sender, ids in plan.own.items():
                log.warning(
                    "the sender is this account's own address: your own mail is never "
                    "triaged; added the error label",
                    extra={"fields": {"sender": sender, "emails": len(ids)}},
                )
        groups = self._config.categories.contact_groups
        if self._groups_stale or any(g not in self._book.groups for g in groups):
            # A managed group vanished: look again every pass until it is back
            # (never recreate it: that is `mailroom setup --apply`'s job, on
            # the user's word, and may run in another process).
            self._groups_stale = False
            await self._book.find_groups(groups)
        result.missing.update(f"mailbox {n!r}" for n in self.mailboxes.missing)
        result.missing.update(
            f"contact group {g!r}"
            for g in self._config.categories.contact_groups
            if g not in self._book.groups
        )
        ready: list[SenderWork] = []
        for work in plan.senders.values():
            broken = self._broken(work.category)
            if broken:
                self._fail(
                    work, None, result, f"{work.category.name}: {missing_message_parts(broken)}"
                )
            else:
                ready.append(work)
        if ready:
            await self._triage_senders(ready, result)
        return result

    async def _triage_senders(self, works: list[SenderWork], result: PollResult) -> None:
        """Every ready sender together, in a constant number of requests.

        The order per sender is the old one: contact and groups (what routes
        future mail), then all their mail re-filed, then the label off, last,
        so a failure anywhere is simply retried by the next pass. A sender
        failing at a step drops out of the later ones; the others go on.
        """
        cats = self._config.categories
        live = {w.sender: w for w in works}
        # 1. What the book has for every sender, and all their mail.
        wants = [Want(w.sender, w.display_name, w.category.contact_type) for w in works]
        lookup = await self._step(live, result, self._book.lookup(wants))
        if lookup is None:
            return
        for address, exc in lookup.failed.items():
            self._fail(live.pop(address), exc, result)
        await self._one_contact_two_categories(live, lookup.known, result)
        changes = []
        for work in live.values():
            known = lookup.known[work.sender]
            groups = plan_groups(known.all_groups, work.category, cats)
            changes.append(Change(known, groups.add, groups.remove))
        mail = await self._step(live, result, self._senders_mail(list(live.values())))
        if mail is None:
            return
        if self.dry_run:
            for change in changes:
                self._rehearse(live[change.address], change, mail[change.address])
            return

        # 2. Contacts and groups, all senders in one go.
        failed = await self._step(live, result, self._book.apply(changes))
        if failed is None:
            return
        for address, exc in failed.items():
            if address in live:
                self._fail(live.pop(address), exc, result)

        # 3. Every email of every sender left, re-filed in one Email/set.
        refile: dict[str, dict[str, Any]] = {}
        owner: dict[str, str] = {}
        for work in live.values():
            for eid, patch in plan_refile(
                mail[work.sender], work.category, cats, self.mailboxes
            ).items():
                refile[eid] = patch
                owner[eid] = work.sender
        outcome = await self._step(live, result, self._jmap.update_emails(refile))
        if outcome is None:
            return
        result.record(outcome)
        self._drop_refused(outcome, owner, live, result)

        # 4. The labels come off last.
        removal: dict[str, dict[str, Any]] = {}
        label_owner: dict[str, str] = {}
        for work in live.values():
            after = {
                eid: target_mailboxes(mail[work.sender][eid], work.category, cats, self.mailboxes)
                if eid in refile
                else mail[work.sender][eid]
                for eid in work.emails
            }
            for eid, patch in plan_label_removal(
                after, work.category, cats, self.mailboxes
            ).items():
                removal[eid] = patch
                label_owner[eid] = work.sender
        outcome = await self._step(live, result, self._jmap.update_emails(removal))
        if outcome is None:
            return
        result.record(outcome)
        self._drop_refused(outcome, label_owner, live, result)

        for work in live.values():
            refiled = sum(1 for eid in mail[work.sender] if owner.get(eid) == work.sender)
            result.triaged[work.category.name] += 1
            result.senders.append((work.sender, work.category.name))
            result.emails_refiled += refiled
            log.info(
                "triaged sender",
                extra={
                    "fields": {
                        "sender": work.sender,
                        "category": work.category.name,
                        "emails_refiled": refiled,
                    }
                },
            )

    async def _one_contact_two_categories(
        self, live: dict[str, SenderWork], known: Mapping[str, Known], result: PollResult
    ) -> None:
        """Two addresses of one contact labelled with different categories: a conflict.

        The contact can only be in one category; which one is meant is the
        user's to say, so both senders get the error label and keep theirs.
        """
        by_contact: dict[str, list[SenderWork]] = {}
        for work in live.values():
            k = known.get(work.sender)
            if k is None or k.uid is None:
                continue
            for uid in {uids.canonical(k.uid), *(uids.canonical(t.uid) for t in k.twins)}:
                by_contact.setdefault(uid, []).append(work)
        torn = {
            w.sender: w
            for works in by_contact.values()
            if len({w.category.name for w in works}) > 1
            for w in works
        }
        if not torn:
            return
        await self._flag([eid for w in torn.values() for eid in w.emails], result)
        for sender, work in torn.items():
            live.pop(sender, None)
            result.conflicts += 1
            log.warning(
                "one contact has addresses labelled with different categories; "
                "added the error label",
                extra={"fields": {"sender": sender, "category": work.category.name}},
            )

    async def _step(
        self, live: dict[str, SenderWork], result: PollResult, step: Awaitable[T]
    ) -> T | None:
        """Run one batched step; if it fails as a whole, every sender still in it fails.

        Rejected credentials fail the pass instead: they are nobody's sender.
        """
        try:
            return await step
        except (JmapAuthError, ContactsAuthError):
            raise
        except Exception as exc:
            for work in live.values():
                self._fail(work, exc, result)
            live.clear()
            return None

    def _drop_refused(
        self,
        outcome: SetOutcome,
        owner: dict[str, str],
        live: dict[str, SenderWork],
        result: PollResult,
    ) -> None:
        """Senders with an email the server refused fail; deleted emails need nothing."""
        refused: dict[str, dict[str, dict[str, Any]]] = {}
        for eid, err in outcome.failures.items():
            if err.get("type") != "notFound" and eid in owner:
                refused.setdefault(owner[eid], {})[eid] = err
        for sender, failures in refused.items():
            if sender in live:
                self._fail(live.pop(sender), _set_error(failures), result)

    def _fail(
        self,
        work: SenderWork,
        exc: BaseException | None,
        result: PollResult,
        message: str | None = None,
    ) -> None:
        """Count and log a sender left for the next pass; its labels stay."""
        result.failures += 1
        result.last_error = message or str(exc) or type(exc).__name__
        if isinstance(exc, GroupMissingError):
            self._groups_stale = True
            if exc.group is not None:
                result.missing.add(f"contact group {exc.group!r}")
        # The unforeseen get their traceback.
        expected = exc is None or isinstance(exc, EXPECTED_ERRORS)
        log.error(
            "triage failed; labels kept for the next pass",
            exc_info=None if expected else exc,
            extra={
                "fields": {
                    "sender": work.sender,
                    "category": work.category.name,
                    "error": result.last_error,
                }
            },
        )

    async def _scan(self, result: PollResult) -> list[dict[str, Any]]:
        """Every email in a triage-label mailbox; one request when there are few."""
        for _attempt in range(2):
            boxes = self.mailboxes
            label_filter = {
                "operator": "OR",
                "conditions": [{"inMailbox": m} for m in boxes.labels.values()],
            }
            mailbox_call = Call("Mailbox/get", {"ids": None, "properties": MAILBOX_PROPERTIES}, "m")
            page, resp = await self._jmap.query_page(
                label_filter,
                EMAIL_PROPERTIES,
                position=0,
                limit=self._jmap.page_size(),
                before=[mailbox_call],
            )
            if resp is None:  # maxCallsInRequest below 3: the mailboxes on their own
                resp = await self._jmap.request([mailbox_call])
            mailbox_get = resp.get("m", "Mailbox/get")
            mailboxes = mailbox_get.get("list")
            if not isinstance(mailboxes, list) or not all(isinstance(m, dict) for m in mailboxes):
                raise JmapProtocolError("Mailbox/get: 'list' is not a list of objects")
            if not self._still_valid(mailboxes):
                # A label or destination was renamed, deleted or recreated.
                log.info("mailboxes changed; resolving them again")
                self._boxes = self._resolve(mailboxes)
                continue
            result.seen_states = {
                "Mailbox": str(mailbox_get.get("state", "")),
                "Email": page.state,
            }
            emails = list(page.emails)
            if not page.last:
                # More than a page labelled at once: fetch the rest by position.
                async for more in self._jmap.pages(
                    label_filter,
                    EMAIL_PROPERTIES,
                    position=len(page.ids),
                    per_request=PAGES_AT_ONCE,
                ):
                    emails.extend(more.emails)
            return emails
        raise JmapProtocolError("mailboxes keep changing during the scan")

    async def _flag(self, ids: list[str], result: PollResult) -> None:
        if self.dry_run:
            self._said("would add the error label", ("flag", *sorted(ids)), {"emails": len(ids)})
            return
        patch = {eid: {f"mailboxIds/{self.mailboxes.error_label}": True} for eid in ids}
        outcome = await self._jmap.update_emails(patch)
        result.record(outcome)
        refused = {k: v for k, v in outcome.failures.items() if v.get("type") != "notFound"}
        if refused:
            # Log, count, go on: the other senders must not wait on these.
            result.unflagged += len(refused)
            log.warning(
                "emails refused the error label",
                extra={"fields": {"emails": len(refused), "error": str(_set_error(refused))}},
            )

    def _rehearse(self, work: SenderWork, change: Change, mail: dict[str, frozenset[str]]) -> None:
        """A dry run's account of one sender: what a real pass would write."""
        refile = plan_refile(mail, work.category, self._config.categories, self.mailboxes)
        fields = {
            "sender": work.sender,
            "category": work.category.name,
            "contact": change.known.action.value,
            "join": ",".join(change.join) or "-",
            "leave": ",".join(change.leave) or "-",
            "emails_refiled": len(refile),
            "labels_removed": len(work.emails),
        }
        key = (work.sender, work.category.name, *sorted(mail))
        self._said("dry run: would triage sender", key, fields)

    async def _senders_mail(self, works: list[SenderWork]) -> dict[str, dict[str, frozenset[str]]]:
        """Every email of every sender (id -> mailboxes), the labelled ones included.

        One query for all senders. The JMAP ``from`` filter is a text match,
        so the exact address is confirmed here.
        """
        mail: dict[str, dict[str, frozenset[str]]] = {w.sender: dict(w.emails) for w in works}
        if not works:
            return mail
        for filter_ in any_of_chunks([{"from": w.sender} for w in works]):
            for email in await self._jmap.query_emails(
                filter_, EMAIL_PROPERTIES, per_request=PAGES_AT_ONCE
            ):
                who = sender_of(email)
                if who is not None and who[0] in mail and isinstance(email.get("id"), str):
                    mail[who[0]][email["id"]] = mailbox_ids_of(email)
        return mail

    def _said(self, message: str, key: tuple[str, ...], fields: dict[str, Any]) -> None:
        # Nothing changes in a dry run, so every pass plans the same again:
        # say each distinct plan once at INFO.
        new = key not in self._rehearsed
        if new and len(self._rehearsed) < REHEARSALS_KEPT:
            self._rehearsed.add(key)
        log.log(logging.INFO if new else logging.DEBUG, message, extra={"fields": fields})


def _set_error(failures: dict[str, dict[str, Any]]) -> JmapSetError:
    return JmapSetError("Email/set", "notUpdated", failures)
