"""SIGKILL in the middle of a pass of 20 senders, then a restart: every sender
triaged once, into one group, and the ledger complete, one decision each."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from mailroom.contacts.book import ContactsBackend
from mailroom.ledger.model import Outcome
from mailroom.ledger.store import Ledger
from tests.faults import FaultySandbox
from tests.process import MailroomProcess, wait_until

SENDERS = [f"s{n:02}@kill{n % 3}.example" for n in range(20)]


@pytest.mark.slow
@pytest.mark.parametrize("moment", [1, 2], ids=["while-refiling", "while-unlabelling"])
@pytest.mark.parametrize("backend", [ContactsBackend.CARDDAV, ContactsBackend.JMAP])
def test_sigkill_mid_pass_then_restart(
    moment: int, backend: ContactsBackend, tmp_path: Path
) -> None:
    with FaultySandbox(flavour="rfc", jmap_contacts=backend is ContactsBackend.JMAP) as sb:
        env = {**sb.env(backend.value), "MAILROOM_STATE_DIR": str(tmp_path)}
        mail = sb.mail
        mail.ensure_mailbox("Screener")
        labelled = {}
        for n, sender in enumerate(SENDERS):
            ids = [mail.deliver(sender) for _ in range(3)]
            labelled[sender] = ids
            mail.set_mailboxes(ids[0], {"Screener", "@ToFeed" if n % 2 else "@ToPaperTrail"})
        before = {e.id: frozenset(e.mailbox_ids) for e in mail.emails.values()}
        sets = {"n": 0}
        victim: dict[str, MailroomProcess] = {}

        def kill_mid_pass(name: str, args: dict[str, Any]) -> None:
            # Inside the stand-in, as the request arrives: the server applies it,
            # the process never hears back.
            if name == "Email/set" and args.get("update") and "first" in victim:
                sets["n"] += 1
                if sets["n"] == moment:
                    os.kill(victim.pop("first").proc.pid, signal.SIGKILL)

        with MailroomProcess(env) as first:
            victim["first"] = first
            mail.before_method = kill_mid_pass
            assert wait_until(lambda: first.proc.poll() is not None, 60), first.log
        assert first.proc.returncode == -signal.SIGKILL
        mail.before_method = None
        with MailroomProcess(env, setup=False) as second:
            done = wait_until(
                lambda: (
                    all(
                        not (mail.mailbox_names(ids[0]) & {"@ToFeed", "@ToPaperTrail", "Screener"})
                        for ids in labelled.values()
                    )
                    and second.health()[1].get("polling", {}).get("last_success_at") is not None
                ),
                60,
            )
            assert done, second.log
            assert second.stop() == 0
        for n, sender in enumerate(SENDERS):
            want = "Feed" if n % 2 else "Paper Trail"
            assert sb.contacts.groups_of_address(sender) == {want}, sender
            for email_id in labelled[sender]:
                assert mail.mailbox_names(email_id) == {want}
        ledger, _ = Ledger.open(tmp_path / "mailroom.db")
        decisions = ledger.history()
        assert sorted(d.intent.subject for d in decisions) == sorted(SENDERS)  # once each
        assert {d.outcome for d in decisions} == {Outcome.DONE}
        for d in decisions:
            moved = {m.email: m for m in d.effects.moves}
            assert set(moved) == set(labelled[d.intent.subject])
            for email_id, move in moved.items():
                assert move.before == before[email_id]  # as before the first attempt
                assert move.after == frozenset(mail.emails[email_id].mailbox_ids)
