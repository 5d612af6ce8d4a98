"""What the pages do to the account: decide senders (or their whole domain)
and take decisions back, carried out by the service itself.

Each runs under the account's writer lock, as a pass or a command does (a
lock of its own: a pass of this same process and a page's decision still
exclude each other), with no debounce: the account changes as soon as the
writer is free. Every one is recorded in the ledger, intent first, with
trigger ``web``, by the same steps ``mailroom triage`` and ``undo`` take.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mailroom.account.categories import Category
from mailroom.core.vocabulary import Trigger
from mailroom.domains.names import normal, refusal
from mailroom.errors import MailroomError
from mailroom.ledger.reading import TRAIL, Filter
from mailroom.ledger.store import Ledger
from mailroom.lists.listid import SUBJECT_PREFIX, subject_of
from mailroom.lists.undo import undo_rule_of_list
from mailroom.takeback.domain import undo_rule
from mailroom.takeback.plan import undoable
from mailroom.takeback.session import takeback_of
from mailroom.wiring import Clients
from mailroom.writer.lock import WriterLock

log = logging.getLogger(__name__)

WAIT_S = 30.0  # for a pass or a command writing the account; the page says so past it
MAX_SENDERS = 100  # decided by one form


@dataclass
class Done:
    """What became of one form's decision or undo, for the page to say."""

    done: list[str] = field(default_factory=list)  # subjects decided or taken back
    failed: list[tuple[str, str]] = field(default_factory=list)  # subject, why


class Decisions:
    def __init__(
        self,
        clients: Clients,
        ledger: Ledger,
        state_dir: Path,
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._clients = clients
        self._ledger = ledger
        self._state_dir = state_dir
        self._changed = changed

    async def decide(
        self, senders: Sequence[str], category: Category, *, whole_domain: bool
    ) -> Done:
        out = Done()
        try:
            async with self._writing("a decision on the web page"):
                if whole_domain:
                    for domain in sorted({normal(s.rpartition("@")[2]) for s in senders}):
                        await self._domain(domain, category, out)
                else:
                    for sender in senders:
                        await self._sender(sender, category, out)
        except MailroomError as exc:
            out.failed += [(s, str(exc)) for s in senders if not _mentioned(out, s)]
        finally:
            self._changed()
        return out

    async def decide_list(self, ident: str, category: Category) -> Done:
        """A mailing list decided as a whole (``list:<id>``): its waiting posts
        filed now, later ones by the passes; no contact changes."""
        out, subject = Done(), subject_of(ident)
        try:
            async with self._writing("a decision on the web page"):
                filed = await self._clients.triage.decide_list(ident, category, Trigger.WEB)
        except MailroomError as exc:
            out.failed.append((subject, str(exc)))
        else:
            if filed.failed is None:
                out.done.append(subject)
            else:
                out.failed.append(
                    (subject, f"{filed.failed}; decide it again to finish, or undo it")
                )
        finally:
            self._changed()
        return out

    async def undo(self, subject: str) -> Done:
        out = Done()
        try:
            async with self._writing("an undo on the web page"):
                await self._undo(subject, out)
        except MailroomError as exc:
            out.failed.append((subject, str(exc)))
        finally:
            self._changed()
        return out

    def _writing(self, what: str) -> contextlib.AbstractAsyncContextManager[None]:
        return WriterLock(self._state_dir).hold(what, wait=WAIT_S)

    async def _sender(self, sender: str, category: Category, out: Done) -> None:
        try:
            _, records = await self._clients.triage.decide(sender, category, Trigger.WEB)
        except MailroomError as exc:
            out.failed.append((sender, str(exc)))
            return
        for record in records:
            if record.alive:
                out.done.append(record.sender)
            else:
                out.failed.append((record.sender, record.reason or "not triaged"))

    async def _domain(self, domain: str, category: Category, out: Done) -> None:
        subject = f"@{domain}"
        why = refusal(domain, force=False)
        if why is not None:
            out.failed.append((subject, why))
            return
        _, records = await self._clients.triage.decide_domain(
            domain, category, self._ledger, Trigger.WEB
        )
        out.done.append(subject)
        out.failed += [(r.sender, r.reason or "not triaged") for r in records if not r.alive]

    async def _undo(self, subject: str, out: Done) -> None:
        ledger = self._ledger
        if subject.startswith(SUBJECT_PREFIX):
            rule = ledger.list_rules().get(subject.removeprefix(SUBJECT_PREFIX))
            if rule is None:
                out.failed.append((subject, "nothing to undo: no decision of it stands"))
                return
            boxes = self._clients.triage.mailboxes
            await undo_rule_of_list(self._clients.jmap, boxes, ledger, rule, Trigger.WEB.value)
            out.done.append(subject)
            return
        exact = subject.startswith("@")
        decision = undoable(ledger.history(Filter(subject, limit=TRAIL, exact=exact)))
        if decision is None:
            out.failed.append((subject, "nothing to undo: no decision of it stands"))
            return
        session = await takeback_of(self._clients, ledger)
        if exact:
            plans = await session.takeback.plan(ledger.ruled_by([decision.id]), ledger)
            results = await undo_rule(ledger, session.takeback, decision, plans, Trigger.WEB)
        else:
            plans = await session.takeback.plan([decision], ledger)
            results = await session.takeback.apply(plans, ledger, Trigger.WEB)
        failed = [(r.plan.decision.intent.subject, r.error) for r in results if r.error]
        if failed:
            out.failed += [(s, e or "") for s, e in failed]
        else:
            out.done.append(subject)


def _mentioned(out: Done, subject: str) -> bool:
    return subject in out.done or any(s == subject for s, _ in out.failed)
