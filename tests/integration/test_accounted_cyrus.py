"""Every decision accounted for, on both Cyrus builds: a refused re-file loses no
mail and is taken back by reset; a re-triage between kinds is Mailroom's own;
commands racing the running service on a slow link are never overruled; a
reset beside the service with a domain rule larger than one round ends."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.faultproxy import FaultProxy
from tests.integration.cyrus import Cyrus
from tests.integration.test_cyrus import (
    _mailroom,
    contact_uid,
    groups_of,
    start_mailroom,
    unique,
)
from tests.process import wait_until

ALL_RIGHTS = "lrswipkxtecdan"


@contextmanager
def no_insert(cyrus: Cyrus, mailbox: str) -> Iterator[None]:
    """The account may not file mail into ``mailbox`` (its ACL lacks ``i``)."""
    cyrus.ensure_mailbox(mailbox)
    imap = cyrus.imap(admin=True)
    name = f'"user/{cyrus.account}/{mailbox}"'  # quoted: names may hold spaces
    try:
        assert imap.setacl(name, cyrus.account, ALL_RIGHTS.replace("i", ""))[0] == "OK"
        yield
    finally:
        assert imap.setacl(name, cyrus.account, ALL_RIGHTS)[0] == "OK"
        imap.logout()


def prepare(cyrus: Cyrus, senders: dict[str, int], name: str = "Cy Rus") -> dict[str, set[str]]:
    cyrus.ensure_mailbox("Screener")
    for sender, n in senders.items():
        for i in range(n):
            cyrus.deliver(sender, name, f"Mail {i}")
    cyrus.wait_for_mail_of(senders)
    assert _mailroom(cyrus, "setup", "--apply").returncode == 0
    return {e: b for mail in cyrus.mail_of(senders).values() for e, b in mail.items()}


def decisions(cyrus: Cyrus, sender: str) -> list[dict[str, object]]:
    done = _mailroom(cyrus, "history", sender, "--json")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_a_refused_refile_loses_no_mail_and_reset_takes_it_back(any_cyrus: Cyrus) -> None:
    """Cyrus 3.6 answers "updated" to a re-file the ACL forbids and drops the
    email; 3.13 answers "forbidden". On both: nothing lost, the contact already
    written stands in the ledger, and reset takes it back."""
    cyrus = any_cyrus
    sender = unique("refused")
    before = prepare(cyrus, {sender: 3})
    with no_insert(cyrus, "Paper Trail"):
        done = _mailroom(cyrus, "triage", sender, "Paper Trail", "--apply")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "not triaged" in done.stdout and "Paper Trail" in done.stdout, done.stdout
        assert cyrus.emails_from(sender) == before  # every email, still in the Screener
    assert asyncio.run(groups_of(cyrus, sender.lower())) == {"Paper Trail"}  # the contact landed
    (decision,) = decisions(cyrus, sender)
    assert decision["outcome"] == "partial", decision
    reset = _mailroom(cyrus, "reset", "--apply")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert cyrus.emails_from(sender) == before
    assert asyncio.run(contact_uid(cyrus, sender.lower())) is None


def test_a_re_triage_between_kinds_is_taken_back_whole(any_cyrus: Cyrus) -> None:
    """Person then Jail fills the company field on the person card Mailroom made:
    still Mailroom's own, so the undo of the first decision deletes it."""
    cyrus = any_cyrus
    undone, reset = unique("kinds-undo"), unique("kinds-reset")
    before = prepare(cyrus, {undone: 2, reset: 2}, name="Kim Kind")
    for sender in (undone, reset):
        for category in ("Person", "Jail"):
            done = _mailroom(cyrus, "triage", sender, category, "--apply")
            assert done.returncode == 0, done.stdout + done.stderr
    for _ in range(2):
        back = _mailroom(cyrus, "undo", undone, "--apply")
        assert back.returncode == 0, back.stdout + back.stderr
    assert "contact deleted" in back.stdout, back.stdout
    done = _mailroom(cyrus, "reset", "--apply")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "contact kept" not in done.stdout, done.stdout
    for sender in (undone, reset):
        assert asyncio.run(contact_uid(cyrus, sender.lower())) is None, sender
        assert all(cyrus.emails_from(sender)[e] == before[e] for e in cyrus.emails_from(sender))


def slow_command(cyrus: Cyrus, proxy: FaultProxy, *argv: str) -> subprocess.Popen[str]:
    """A command whose every request crosses a slow link (the proxy's latency)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MAILROOM_")},
        **cyrus.mailroom_env(MAILROOM_JMAP_SESSION_URL=proxy.url + "/jmap/"),
    }
    if not cyrus.build.jmap_contacts:
        env["MAILROOM_CARDDAV_URL"] = proxy.url
    return subprocess.Popen(
        [sys.executable, "-m", "mailroom", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def holding(cyrus: Cyrus, command: str) -> bool:
    """Whether ``mailroom <command>`` holds the account's writer lock now."""
    lock = Path(cyrus.mailroom_env()["MAILROOM_STATE_DIR"]) / "writer.lock"
    try:
        return f"mailroom {command}" in lock.read_text()
    except OSError:
        return False


def test_commands_racing_the_service_on_a_slow_link(any_cyrus: Cyrus) -> None:
    """``triage`` and ``undo`` from the command line while the service runs and
    the user labels other mail: the service's passes wait for each command."""
    cyrus = any_cyrus
    command_sender, pushed, relabelled = unique("cli"), unique("pushed"), unique("relabel")
    prepare(cyrus, {command_sender: 2, pushed: 1, relabelled: 2})
    port = int(cyrus.base_url.rsplit(":", 1)[1])
    with (
        start_mailroom(cyrus, MAILROOM_POLL_INTERVAL="300", MAILROOM_DEBOUNCE_SECONDS="1") as mr,
        FaultProxy("127.0.0.1", port) as proxy,
    ):
        assert wait_until(lambda: mr.push_state() == "connected", 60), mr.log
        proxy.latency = 0.4  # every request of the command takes a second or more
        command = slow_command(cyrus, proxy, "triage", command_sender, "Feed", "--apply")
        (first,) = cyrus.emails_from(pushed)
        assert wait_until(lambda: holding(cyrus, "triage"), 30)
        cyrus.label(first, "@ToImbox")  # a push pass while the command runs
        out, err = command.communicate(timeout=120)
        assert command.returncode == 0, out + err
        assert wait_until(lambda: cyrus.emails_from(pushed)[first] == {"Imbox", "Inbox"}, 30)
        assert "pass waits for another writer of the account" in mr.log, mr.log
        assert decisions(cyrus, command_sender)[0]["outcome"] == "done"

        # An undo on the slow link while the user files the sender to Paper Trail.
        mail = cyrus.emails_from(relabelled)
        label_on = sorted(mail)[0]
        done = _mailroom(cyrus, "triage", relabelled, "Feed", "--apply")
        assert done.returncode == 0, done.stdout + done.stderr
        command = slow_command(cyrus, proxy, "undo", relabelled, "--apply")
        assert wait_until(lambda: holding(cyrus, "undo"), 30)
        cyrus.label(label_on, "@ToPaperTrail")  # while the undo runs
        out, err = command.communicate(timeout=120)
        assert command.returncode == 0, out + err
        assert wait_until(
            lambda: all(b == {"Paper Trail"} for b in cyrus.emails_from(relabelled).values()), 30
        ), mr.log
    assert asyncio.run(groups_of(cyrus, relabelled.lower())) == {"Paper Trail"}
    assert asyncio.run(contact_uid(cyrus, relabelled.lower())) is not None
    trail = [(d["kind"], d["category"], d["outcome"]) for d in decisions(cyrus, relabelled)]
    assert trail == [
        ("triage", "Paper Trail", "done"),
        ("undo", None, "done"),
        ("triage", "Feed", "done"),
    ], trail


def test_reset_beside_the_service_with_a_rule_larger_than_a_round(any_cyrus: Cyrus) -> None:
    """A rule covering 101 senders (a reset round is 100), reset while the service
    runs and the domain keeps writing: no sender is triaged again, and the ledger
    holds one triage and one undo each."""
    cyrus = any_cyrus
    domain = f"r{uuid.uuid4().hex[:8]}.example"
    senders = {f"s{n}@{domain}": 1 for n in range(101)}
    before = prepare(cyrus, senders)
    done = _mailroom(cyrus, "triage", f"@{domain}", "Feed", "--apply")
    assert done.returncode == 0, done.stdout + done.stderr
    with start_mailroom(cyrus, MAILROOM_POLL_INTERVAL="300", MAILROOM_DEBOUNCE_SECONDS="1") as mr:
        assert wait_until(lambda: mr.push_state() == "connected", 60), mr.log
        reset = subprocess.Popen(
            [sys.executable, "-m", "mailroom", "reset", "--apply"],
            env={**os.environ, **cyrus.mailroom_env()},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3):  # the domain writes again meanwhile: push passes
            cyrus.deliver(f"s{n}@{domain}", "Cy Rus", "Again")
        out, err = reset.communicate(timeout=300)
        assert reset.returncode == 0, out + err
        for n in range(3):
            cyrus.wait_for_mail(f"s{n}@{domain}", 2)
        assert wait_until(lambda: "poll finished" in mr.log, 30), mr.log
    after = cyrus.mail_of(senders)
    for sender in senders:  # the first emails as before, the new ones waiting
        mail = after[sender]
        assert all(b == {"Screener"} for b in mail.values()), sender
        assert {e: b for e, b in before.items() if e in mail} == {
            e: b for e, b in mail.items() if e in before
        }
    history = decisions(cyrus, f"@{domain}")
    kinds = sorted((str(d["subject"]), str(d["kind"]), str(d["outcome"])) for d in history)
    assert len(kinds) == 2 * 102, kinds[:10]  # 101 senders and the rule: triaged, undone
    assert all(outcome == "done" for _, _, outcome in kinds)
