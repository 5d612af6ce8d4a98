"""The ledger-account invariant under random interleavings (Hypothesis stateful).

A user labels, sends back and decides whole domains from the phone; the service
passes; the command line triages, undoes and resets, now and then from a second
process at once; the server refuses a write or the process dies at one. After
every step, for every sender whose latest decision is settled, the groups in the
account are the ones the ledger says; no email is ever lost or left in no
mailbox; at the end, ``reset --apply`` returns the account to its start.

Each step runs in a fresh event loop with fresh clients: every pass and every
command is a process of its own, as in life.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mailroom.account.categories import DEFAULT_CATEGORIES_JSON, parse_categories
from mailroom.commands import triage as decide
from mailroom.commands import undo
from mailroom.ledger.model import Outcome
from mailroom.ledger.reading import Filter
from mailroom.ledger.store import Ledger
from mailroom.settings import load_settings
from mailroom.wiring import make_clients
from mailroom.writer.lock import WriterLock
from tests.faults import FaultySandbox
from tests.takeback.sweep import KINDS, Fault, FaultTransport, Killed
from tests.takeback.test_sweep import commands_through

SENDERS = ("ann@one.example", "bob@two.example", "cy@dom.example", "di@news.dom.example")
CATEGORIES = parse_categories(DEFAULT_CATEGORIES_JSON)
NAMES = [c.name for c in CATEGORIES]
LABEL = {c.name: c.label for c in CATEGORIES}
LABELS = {*LABEL.values(), "@ToScreener", "@WholeDomain", "@MailroomError"}


class Account(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sb = FaultySandbox().start()
        self.sb.mail.ensure_mailbox("Screener")
        self.sb.prepare()
        self.state = tempfile.TemporaryDirectory()
        self.backend = "jmap"
        self.mail: dict[str, list[str]] = {s: [self.sb.mail.deliver(s)] for s in SENDERS}
        self.start = self.snapshot()
        self.fault: Fault | None = None

    def teardown(self) -> None:
        self.sb.stop()
        self.state.cleanup()

    # -- the world -------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return {
            **self.sb.env(self.backend),
            "MAILROOM_CONTACTS": self.backend,
            "MAILROOM_STATE_DIR": self.state.name,
        }

    def snapshot(self) -> tuple[Any, ...]:
        labels = {self.sb.mail.mailbox_id(n) for n in LABELS}
        with self.sb.mail.lock:
            mail = {e: frozenset(m.mailbox_ids) - labels for e, m in self.sb.mail.emails.items()}
        contacts = {
            s: (
                self.sb.contacts.contact_uid(s) is not None,
                frozenset(self.sb.contacts.groups_of_address(s)),
            )
            for s in SENDERS
        }
        return mail, contacts

    def transport(self) -> httpx.AsyncBaseTransport:
        fault, self.fault = self.fault, None
        return FaultTransport(fault)

    def run(self, work: Any) -> None:
        with contextlib.suppress(Killed, Exception):
            asyncio.run(work)

    async def _pass(self, transport: httpx.AsyncBaseTransport) -> None:
        """A pass as the service runs it: holding the account's writer lock."""
        lock = WriterLock(Path(self.state.name))
        async with lock.hold("the service's pass", wait=60):
            await self._unlocked_pass(transport)

    async def _unlocked_pass(self, transport: httpx.AsyncBaseTransport) -> None:
        ledger, _ = Ledger.open(Path(self.state.name) / "mailroom.db")
        try:
            async with httpx.AsyncClient(transport=transport, timeout=10.0) as http:
                clients = make_clients(load_settings(self.env), http, ledger=ledger)
                await clients.connect()
                await clients.triage.setup()
                await clients.triage.run_pass()
        finally:
            ledger.close()

    def _label(self, sender: str, *labels: str) -> None:
        email = self.mail[sender][-1]
        self.sb.mail.set_mailboxes(email, {*self.sb.mail.mailbox_names(email), *labels})

    # -- the user, the service, the command line -----------------------------------

    @rule(sender=st.sampled_from(SENDERS), category=st.sampled_from(NAMES))
    def label(self, sender: str, category: str) -> None:
        self._label(sender, LABEL[category])

    @rule(sender=st.sampled_from(SENDERS))
    def send_back(self, sender: str) -> None:
        self._label(sender, "@ToScreener")

    @rule(sender=st.sampled_from(SENDERS[2:]), category=st.sampled_from(NAMES))
    def whole_domain(self, sender: str, category: str) -> None:
        self._label(sender, LABEL[category], "@WholeDomain")

    @rule(sender=st.sampled_from(SENDERS))
    def new_mail(self, sender: str) -> None:
        self.mail[sender].append(self.sb.mail.deliver(sender))

    @rule(at=st.integers(0, 4), kind=st.sampled_from(KINDS))
    def fault_next(self, at: int, kind: str) -> None:
        self.fault = Fault(at, kind)  # type: ignore[arg-type]

    @rule()
    def service_pass(self) -> None:
        self.run(self._pass(self.transport()))

    @rule(sender=st.sampled_from(SENDERS), category=st.sampled_from(NAMES))
    def cli_triage(self, sender: str, category: str) -> None:
        async def work() -> None:
            with commands_through(self.transport()):
                await decide.run_triage(
                    load_settings(self.env),
                    sender,
                    category,
                    apply=True,
                    out=io.StringIO(),
                    err=io.StringIO(),
                )

        self.run(work())

    @rule(sender=st.sampled_from(SENDERS))
    def cli_undo(self, sender: str) -> None:
        async def work() -> None:
            with commands_through(self.transport()):
                await undo.run_undo(
                    load_settings(self.env),
                    sender,
                    apply=True,
                    out=io.StringIO(),
                    err=io.StringIO(),
                )

        self.run(work())

    @rule(sender=st.sampled_from(SENDERS), category=st.sampled_from(NAMES))
    def two_processes(self, sender: str, category: str) -> None:
        """A command from a second process while a pass of the service runs."""

        async def work() -> None:
            settings_ = load_settings(self.env)
            await asyncio.gather(
                self._pass(httpx.AsyncHTTPTransport()),
                decide.run_triage(
                    settings_, sender, category, apply=True, out=io.StringIO(), err=io.StringIO()
                ),
                return_exceptions=True,
            )

        self.run(work())

    @precondition(lambda self: self.fault is None)
    @rule()
    def cli_reset(self) -> None:
        self.run(self._reset())

    async def _reset(self) -> int:
        out, err = io.StringIO(), io.StringIO()
        return await undo.run_reset(load_settings(self.env), apply=True, out=out, err=err)

    # -- what must always hold ---------------------------------------------------------

    @invariant()
    def no_email_lost_or_in_no_mailbox(self) -> None:
        with self.sb.mail.lock:
            emails = dict(self.sb.mail.emails)
        assert set(emails) == {e for mail in self.mail.values() for e in mail}
        assert all(m.mailbox_ids for m in emails.values())

    @invariant()
    def settled_senders_are_where_the_ledger_says(self) -> None:
        path = Path(self.state.name) / "mailroom.db"
        if not path.exists():
            return
        ledger, _ = Ledger.open(path)
        try:
            for sender in SENDERS:
                trail = ledger.history(Filter(sender))
                if not trail or any(d.outcome is not Outcome.DONE for d in trail[:1]):
                    continue  # nothing decided, or the latest not settled
                if any(d.outcome in (Outcome.PENDING, Outcome.PARTIAL) for d in trail):
                    continue
                latest = trail[0]
                # A triage's category, or the one an undo went back to.
                category = latest.intent.category
                want = (
                    {c.contact_group for c in CATEGORIES.chain(CATEGORIES.by_name(category))}
                    if category
                    else set()
                )
                have = self.sb.contacts.groups_of_address(sender)
                assert have == want, (sender, [(d.intent, d.outcome) for d in trail])
        finally:
            ledger.close()

    def teardown_check(self) -> None:
        """At the end: the service passes once more, and reset returns the start."""
        self.run(self._pass(httpx.AsyncHTTPTransport()))
        assert asyncio.run(self._reset()) == 0
        mail, contacts = self.snapshot()
        start_mail, start_contacts = self.start
        assert contacts == start_contacts
        # Every email that was there at the start is where it was (labels aside);
        # the new ones wait in the Screener.
        assert {e: mail[e] for e in start_mail} == start_mail
        screener = self.sb.mail.mailbox_id("Screener")
        assert all(mail[e] == {screener} for e in mail if e not in start_mail)


class AccountWithEnd(Account):
    def teardown(self) -> None:
        try:
            self.teardown_check()
        finally:
            super().teardown()


AccountWithEnd.TestCase.settings = settings(
    max_examples=10,
    stateful_step_count=10,
    deadline=None,
    derandomize=True,  # the same interleavings every run: CI is never flaky
    suppress_health_check=[HealthCheck.too_slow],
)
test_the_ledger_matches_the_account_whatever_happens = pytest.mark.slow(AccountWithEnd.TestCase)
