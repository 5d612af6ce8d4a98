"""The crash-and-refusal sweep: every write of a pass, an undo, a reset, a
send-back and a domain rule, under each fault (killed before it, killed after
it landed, one object refused); then the service restarts and passes, the
user runs ``reset --apply``, and the account must be exactly as it was before
the first decision: every email's mailboxes (labels aside: the user's own, never
put back), every sender's contacts and groups.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailroom.commands import triage as decide
from mailroom.commands import undo
from mailroom.ledger.store import Ledger
from mailroom.settings import Settings, load_settings
from mailroom.takeback import session as takeback_session
from mailroom.wiring import Clients, make_clients
from tests.faults import FaultySandbox
from tests.takeback.sweep import KINDS, Fault, FaultTransport, Killed, Writes

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

BACKENDS = ("carddav", "jmap")
OPERATIONS = ("pass", "undo", "reset", "send-back", "domain")
LABELS = ("@ToImbox", "@ToFeed", "@ToPaperTrail", "@ToJail", "@ToPerson")
EXTRA = ("@ToScreener", "@WholeDomain", "@MailroomError")
SENDERS = {  # sender -> (display name, emails)
    "ann@one.example": ("Ann One", 3),
    "bob@two.example": ("Bob Two", 2),
    "c1@dom.example": ("", 2),
    "c2@news.dom.example": ("Dom News", 1),
}


@dataclass
class World:
    sb: FaultySandbox
    backend: str
    state: Path
    mail: dict[str, list[str]]  # sender -> its emails

    @property
    def settings(self) -> Settings:
        env = {
            **self.sb.env(self.backend),
            "MAILROOM_CONTACTS": self.backend,
            "MAILROOM_STATE_DIR": str(self.state),
        }
        return load_settings(env)

    def label(self, sender: str, label: str, n: int = 0) -> None:
        email = self.mail[sender][n]
        self.sb.mail.set_mailboxes(email, {*self.sb.mail.mailbox_names(email), label})

    def snapshot(self) -> tuple[Any, ...]:
        """Every email's mailboxes (labels aside) and every sender's contacts and groups."""
        labels = {self.sb.mail.mailbox_id(n) for n in (*LABELS, *EXTRA)}
        with self.sb.mail.lock:
            mail = {e: frozenset(m.mailbox_ids) - labels for e, m in self.sb.mail.emails.items()}
        cards = {
            s: sum(1 for _, c in self.sb.contacts.parsed() if s in _emails(c)) for s in SENDERS
        }
        groups = {s: frozenset(self.sb.contacts.groups_of_address(s)) for s in SENDERS}
        return mail, cards, groups


def _emails(card: object) -> set[str]:
    from mailroom.carddav import vcard

    return set() if vcard.is_group(card) else vcard.emails(card)


@contextlib.contextmanager
def world(backend: str) -> Iterator[World]:
    with FaultySandbox() as sb, tempfile.TemporaryDirectory() as state:
        sb.mail.ensure_mailbox("Screener")
        sb.prepare()
        mail = {
            s: [sb.mail.deliver(s, name=name) for _ in range(n)] for s, (name, n) in SENDERS.items()
        }
        yield World(sb, backend, Path(state), mail)


@contextlib.asynccontextmanager
async def service(w: World, transport: httpx.AsyncBaseTransport) -> AsyncIterator[Clients]:
    """The service's clients and workflow, as ``mailroom run`` makes them."""
    ledger, _ = Ledger.open(w.settings.ledger_path)
    try:
        async with httpx.AsyncClient(transport=transport, timeout=10.0) as http:
            clients = make_clients(w.settings, http, ledger=ledger)
            await clients.connect()
            await clients.triage.setup()
            yield clients
    finally:
        ledger.close()


async def passes(w: World, n: int = 1, transport: httpx.AsyncBaseTransport | None = None) -> None:
    async with service(w, transport or httpx.AsyncHTTPTransport()) as clients:
        for _ in range(n):
            await clients.triage.run_pass()


@contextlib.contextmanager
def commands_through(transport: httpx.AsyncBaseTransport) -> Iterator[None]:
    """The commands' HTTP client goes through ``transport``."""
    patch = pytest.MonkeyPatch()

    def client(poll_interval: float = 60.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=transport, timeout=10.0)

    for module in (takeback_session, decide):
        patch.setattr(module, "api_client", client)
    try:
        yield
    finally:
        patch.undo()


async def setup(w: World, operation: str) -> None:
    """The decisions before the operation, made without faults."""
    if operation == "pass":
        w.label("ann@one.example", "@ToFeed")
        w.label("bob@two.example", "@ToPerson")
        return
    if operation == "domain":
        return
    w.label("ann@one.example", "@ToFeed")
    w.label("bob@two.example", "@ToJail")
    await passes(w)
    if operation == "reset":
        w.label("ann@one.example", "@ToPaperTrail", 1)  # a change of mind
        await passes(w)
    if operation == "send-back":
        w.label("ann@one.example", "@ToScreener", 2)


async def operate(w: World, operation: str, transport: FaultTransport) -> None:
    out, err = io.StringIO(), io.StringIO()
    if operation in ("pass", "send-back"):
        await passes(w, transport=transport)
        return
    with commands_through(transport):
        if operation == "undo":
            await undo.run_undo(w.settings, "ann@one.example", apply=True, out=out, err=err)
        elif operation == "reset":
            await undo.run_reset(w.settings, apply=True, out=out, err=err)
        else:
            await decide.run_triage(
                w.settings, "@dom.example", "Feed", apply=True, out=out, err=err
            )


async def one_case(backend: str, operation: str, fault: Fault | None) -> tuple[Any, Any, Writes]:
    with world(backend) as w:
        before = w.snapshot()
        await setup(w, operation)
        writes = Writes()
        # Killed, or failed as a whole by the refusal (a pass that fails, a
        # command that says so): either way what counts is what follows.
        with contextlib.suppress(Killed, Exception):
            await operate(w, operation, FaultTransport(fault, writes))
        await passes(w)  # the service restarts and passes
        out, err = io.StringIO(), io.StringIO()
        code = await undo.run_reset(w.settings, apply=True, out=out, err=err)
        assert code == 0, f"{err.getvalue()}\n{out.getvalue()}"
        return before, w.snapshot(), writes


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("backend", BACKENDS)
async def test_every_write_under_every_fault_ends_exact(
    backend: str, operation: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, writes = await one_case(backend, operation, None)
    assert writes.seen, "the operation wrote nothing: the sweep would test nothing"
    wrong: list[str] = []
    for at in range(len(writes.seen)):
        for kind in KINDS:
            before, after, _ = await one_case(backend, operation, Fault(at, kind))
            if before != after:
                diff = [
                    f"{k}: {b} -> {a}"
                    for part_b, part_a in zip(before, after, strict=True)
                    for k in sorted(set(part_b) | set(part_a))
                    if (b := part_b.get(k)) != (a := part_a.get(k))
                ]
                wrong.append(f"{kind} write {at} ({writes.seen[at]}): {'; '.join(diff)}")
    with capsys.disabled():
        print(
            f"\nsweep {backend} {operation}: {len(writes.seen)} writes x {len(KINDS)} faults "
            f"= {len(writes.seen) * len(KINDS)} cases, {len(wrong)} not exact"
        )
    assert not wrong, "\n".join(wrong)
