"""``make run``: a Screener full of mail, the real service, and a simulated user.

The stand-in runs in this process; ``mailroom run`` runs as a child process,
exactly as it would against Fastmail. The simulated user labels one email per
sender over JMAP (as a phone would) and the demo reports how long the service
took to triage each one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from mailroom.core.words import count
from mailroom.sandbox.mailmodel import ACCOUNT_ID
from mailroom.sandbox.server import Sandbox, free_port


@dataclass(frozen=True)
class DemoSender:
    address: str
    name: str
    emails: int
    category: str  # what the user decides
    label: str


SENDERS = (
    DemoSender("news@acme-weekly.example", "Acme Weekly", 4, "Feed", "@ToFeed"),
    DemoSender("receipts@shopmart.example", "ShopMart", 3, "Paper Trail", "@ToPaperTrail"),
    DemoSender("jane.doe@example.org", "Jane Doe", 2, "Person", "@ToPerson"),
    DemoSender("hello@startup.example", "Startup Inc", 2, "Imbox", "@ToImbox"),
    DemoSender("deals@spammy.example", "Spammy Deals", 5, "Jail", "@ToJail"),
    DemoSender("digest@forum.example", "Forum Digest", 3, "Feed", "@ToFeed"),
    DemoSender("sam@friends.example", "Sam Lee", 1, "Person", "@ToPerson"),
)


def seed(sandbox: Sandbox) -> None:
    sandbox.mail.ensure_mailbox("Screener")
    for number in range(max(s.emails for s in SENDERS)):
        for sender in SENDERS:
            if number < sender.emails:
                sandbox.mail.deliver(
                    sender.address, name=sender.name, subject=f"{sender.name} #{number + 1}"
                )


def _say(text: str) -> None:
    print(f"demo | {text}", flush=True)


class User:
    """Applies labels the way a phone does: one JMAP Email/set per action."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.http = httpx.Client(headers={"Authorization": f"Bearer {sandbox.token}"}, timeout=10.0)

    def label(self, email_id: str, mailbox_id: str) -> None:
        body = {
            "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
            "methodCalls": [
                [
                    "Email/set",
                    {
                        "accountId": ACCOUNT_ID,
                        "update": {email_id: {f"mailboxIds/{mailbox_id}": True}},
                    },
                    "0",
                ]
            ],
        }
        self.http.post(self.sandbox.url + "/jmap/api/", json=body).raise_for_status()


def _wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def run_demo(*, poll_interval: float, debounce: float, pause: float, keep_running: bool) -> int:
    sandbox = Sandbox(flavour="fastmail").start()
    seed(sandbox)
    http_port = free_port()
    env = _environment(sandbox, http_port, poll_interval, debounce)
    _say("first: mailroom setup --apply (what a new user runs after `mailroom check`)")
    setup = subprocess.run([sys.executable, "-m", "mailroom", "setup", "--apply"], env=env)
    if setup.returncode != 0:
        _say("setup failed; giving up")
        return 1
    service = subprocess.Popen([sys.executable, "-m", "mailroom", "run"], env=env)
    user = User(sandbox)
    latencies: list[float] = []
    try:
        labels = [s.label for s in SENDERS]
        if not _wait_for(lambda: all(_has_mailbox(sandbox, x) for x in labels), 30):
            _say("the service did not set up its label mailboxes in 30 s; giving up")
            return 1
        # Push is up once the stand-in has an open stream and the first poll ran.
        _wait_for(lambda: sandbox.total_requests("eventsource") > 0, 10)
        for sender in SENDERS:
            time.sleep(pause)
            took = _label_one(sandbox, user, sender, poll_interval * 2 + 10)
            if took is not None:
                latencies.append(took)
        left = len(sandbox.mail.emails_in("Screener"))
        _say(
            f"done: {len(latencies)}/{len(SENDERS)} senders triaged, "
            f"{count(left, 'email')} left in the Screener, "
            f"slowest {max(latencies, default=0):.2f} s "
            f"(debounce {debounce:g} s)"
        )
        if latencies:
            _take_one_back(env, SENDERS[0].address)
        if keep_running:
            _say(f"still running: the status page is http://127.0.0.1:{http_port}/ ; Ctrl-C stops")
            service.wait()
        else:
            _say("to look around: `mailroom demo --keep-running` leaves it all up")
        return 0 if len(latencies) == len(SENDERS) else 1
    except KeyboardInterrupt:
        return 0
    finally:
        if service.poll() is None:
            service.send_signal(signal.SIGTERM)
            try:
                service.wait(timeout=10)
            except subprocess.TimeoutExpired:
                service.kill()
        sandbox.stop()


def _environment(
    sandbox: Sandbox, http_port: int, poll_interval: float, debounce: float
) -> dict[str, str]:
    """The service's settings against the stand-in, said to the user as it starts."""
    env = {
        **os.environ,
        **sandbox.env("jmap"),  # the API token alone, as on Fastmail: contacts over JMAP
        "MAILROOM_POLL_INTERVAL": f"{poll_interval:g}",
        "MAILROOM_DEBOUNCE_SECONDS": f"{debounce:g}",
        # Where the lines below say (a container's image listens on all its
        # addresses; the demo stays on loopback, as its pages have no login).
        "MAILROOM_HTTP_HOST": "127.0.0.1",
        "MAILROOM_HTTP_PORT": str(http_port),
        "MAILROOM_LOG_FORMAT": env_default("MAILROOM_LOG_FORMAT", "console"),
    }
    _say(
        f"stand-in running at {sandbox.url} with "
        f"{count(len(sandbox.mail.emails), 'email')} in the Screener"
    )
    _say(f"starting: mailroom run (poll interval {poll_interval:g} s, debounce {debounce:g} s)")
    _say(f"status page: http://127.0.0.1:{http_port}/")
    _say(f"health:  http://127.0.0.1:{http_port}/health")
    _say(f"metrics: http://127.0.0.1:{http_port}/metrics")
    return env


def _label_one(sandbox: Sandbox, user: User, sender: DemoSender, within: float) -> float | None:
    """The user labels one email of ``sender``; how long the service took (None: too long)."""
    email_id = next(
        e.id for e in sandbox.mail.emails.values() if e.from_[0]["email"] == sender.address
    )
    label_id = sandbox.mail.mailbox_id(sender.label)
    _say(f"user labels one email from {sender.address} with {sender.label}")
    started = time.monotonic()
    user.label(email_id, label_id)
    if not _wait_for(lambda: label_id not in sandbox.mail.emails[email_id].mailbox_ids, within):
        _say(f"  not triaged within {within:g} s")
        return None
    took = time.monotonic() - started
    groups = sorted(sandbox.contacts.groups_of_address(sender.address))
    homes = sorted(
        {
            name
            for e in sandbox.mail.emails.values()
            if e.from_[0]["email"] == sender.address
            for name in sandbox.mail.mailbox_names(e.id)
        }
    )
    _say(f"  triaged in {took:.2f} s: groups {groups}, all {sender.emails} emails now in {homes}")
    return took


def _take_one_back(env: dict[str, str], sender: str) -> None:
    """What a user does next: read the ledger, and take one decision back."""
    for args in (["history", "--limit", "3"], ["undo", sender, "--apply"], ["history", sender]):
        _say("user runs: mailroom " + " ".join(args))
        done = subprocess.run(
            [sys.executable, "-m", "mailroom", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        for line in (done.stdout + done.stderr).splitlines():
            _say(f"  {line}")


def _has_mailbox(sandbox: Sandbox, name: str) -> bool:
    try:
        sandbox.mail.mailbox_id(name)
    except KeyError:
        return False
    return True


def env_default(name: str, default: str) -> str:
    return os.environ.get(name) or default
