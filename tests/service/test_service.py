"""``mailroom run`` as a real process against the stand-in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from mailroom.sandbox.server import free_port
from tests.faults import FaultySandbox
from tests.process import run_mailroom


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll a condition with a deadline (an outcome, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_run_triages_and_stops_cleanly_on_sigterm() -> None:
    with FaultySandbox() as sb:
        sb.mail.ensure_mailbox("Screener")
        sb.prepare()  # as `mailroom setup --apply` leaves it
        ids = [sb.mail.deliver("shop@store.example", name="Store") for _ in range(2)]
        env = {
            **os.environ,
            **sb.env(),
            "MAILROOM_POLL_INTERVAL": "1",
            "MAILROOM_HTTP_PORT": str(free_port()),
            "MAILROOM_LOG_FORMAT": "console",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailroom", "run"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert wait_until(lambda: sb.contacts.groups_named("Jail") == 1, 30)
            sb.mail.set_mailboxes(ids[0], {"Screener", "@ToJail"})
            assert wait_until(lambda: sb.mail.mailbox_names(ids[0]) == {"Jail"}, 30)
            assert sb.mail.mailbox_names(ids[1]) == {"Jail"}
            assert sb.contacts.groups_of_address("shop@store.example") == {"Jail"}
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert "poll finished trigger=startup" in err
        assert "push connected" in err
        assert "stopped" in err
        assert sb.token not in err and sb.password not in err


def test_sigterm_mid_poll_finishes_the_poll_then_exits_0() -> None:
    with FaultySandbox() as sb:
        sb.mail.ensure_mailbox("Screener")
        sb.prepare()  # as `mailroom setup --apply` leaves it
        ids = [sb.mail.deliver("slow@store.example") for _ in range(3)]
        env = {
            **os.environ,
            **sb.env(),
            "MAILROOM_POLL_INTERVAL": "60",
            "MAILROOM_DEBOUNCE_SECONDS": "0.1",
            "MAILROOM_HTTP_PORT": "0",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailroom", "run"], env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            assert wait_until(lambda: sb.contacts.groups_named("Feed") == 1, 30)
            assert wait_until(lambda: sb.total_requests("api") >= 2, 30)  # startup poll done
            sb.faults.delay_route = "api"
            sb.faults.delay = 0.3  # every JMAP call now takes 0.3 s
            before = sb.total_requests("api")
            sb.mail.set_mailboxes(ids[0], {"Screener", "@ToFeed"})
            # The push poll has started (its first JMAP request arrived): stop now.
            assert wait_until(lambda: sb.total_requests("api") > before, 30)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0
        assert "stopping after the poll in flight" in err
        # The poll ran to the end: everything re-filed, label removed last.
        assert all(sb.mail.mailbox_names(i) == {"Feed"} for i in ids)


def test_run_refuses_a_bare_account_and_writes_nothing() -> None:
    with FaultySandbox() as sb:
        sb.mail.ensure_mailbox("Screener")
        before = (sb.mail.states(), len(sb.mail.mailboxes), dict(sb.contacts.cards))
        env = {**os.environ, **sb.env(), "MAILROOM_HTTP_PORT": str(free_port())}
        done = run_mailroom("run", env=env)
        assert done.returncode == 2
        assert "missing in the account: mailbox '@ToImbox' (label for Imbox)" in done.stderr
        assert "contact group 'Jail' (contact group of Jail)" in done.stderr
        assert "run `mailroom setup --apply`" in done.stderr
        assert (sb.mail.states(), len(sb.mail.mailboxes), dict(sb.contacts.cards)) == before
