"""Real Cyrus IMAP servers (JMAP + EventSource + CardDAV) for integration tests.

Two builds, each through its own scripts in ``../shared``: Debian's Cyrus 3.6
(``cyrus/``: JMAP mail, CardDAV) and Cyrus 3.13-dev built from source
(``cyrus-next/``: also RFC 9610 JMAP Contacts, the closest thing to
Fastmail's server here). Each starts in a short directory under /tmp (unix
socket paths must stay short and reachable by the cyrus user).
"""

from __future__ import annotations

import imaplib
import os
import smtplib
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mailroom.carddav.client import CardDavClient
from mailroom.core.secret import Secret

PROJECT = Path(__file__).resolve().parents[2]
SHARED = PROJECT.parent / "shared"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]
CONTACTS = "urn:ietf:params:jmap:contacts"


@dataclass(frozen=True)
class Build:
    """One Cyrus build and the shared scripts that install, start and stop it."""

    name: str
    scripts: Path
    start: str
    stop: str
    jmap_contacts: bool  # RFC 9610


CYRUS_36 = Build("3.6", SHARED / "cyrus", "start-cyrus.sh", "stop-cyrus.sh", False)
CYRUS_NEXT = Build(
    "3.13-dev", SHARED / "cyrus-next", "start-cyrus-next.sh", "stop-cyrus-next.sh", True
)
SCRIPTS = CYRUS_36.scripts
# cyrdeliver reads CYRUS_USER as the *system* user: never pass ours along.
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


class CyrusUnavailable(Exception):
    pass


def _free_base() -> int:
    # Each pytest-xdist worker searches its own stretch, so two workers never
    # pick the same free ports: not when starting servers at once, and not when
    # one worker's Cyrus restarts (its ports free for a moment) while another
    # starts one. Stretches never wrap around (with a modulo, the sixth worker
    # shared the first's and took a restarting Cyrus's port: 401s from then on).
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    first = 18100 + 100 * (int(worker) if worker.isdigit() else 0)
    for base in range(first, first + 100, 10):
        ok = True
        for port in (base, base + 1, base + 2):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise CyrusUnavailable(f"no free port range for Cyrus in {first}-{first + 100}")


@dataclass
class Cyrus:
    dir: Path
    env: dict[str, str]
    build: Build = CYRUS_36
    _postable: set[str] = field(default_factory=set)

    @classmethod
    def start(
        cls, name: str, settings: Mapping[str, str] | None = None, build: Build = CYRUS_36
    ) -> Cyrus:
        script = build.scripts / build.start
        if not script.exists():
            raise CyrusUnavailable(f"{script} not found")
        if os.geteuid() != 0:
            raise CyrusUnavailable(f"{build.start} needs root (apt and the cyrus user)")
        directory = Path(f"/tmp/mrit-{name}-{uuid.uuid4().hex[:6]}")
        base = _free_base()
        proc = subprocess.run(
            ["bash", str(script), str(directory), str(base)],
            env={**CLEAN_ENV, **(settings or {})},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise CyrusUnavailable(f"{build.start} failed: {tail}")
        env = dict(
            line.split("=", 1)
            for line in (directory / "cyrus.env").read_text().splitlines()
            if "=" in line
        )
        return cls(directory, env, build)

    def stop(self) -> None:
        subprocess.run(
            ["bash", str(self.build.scripts / self.build.stop), str(self.dir), "--purge"],
            env=CLEAN_ENV,
            capture_output=True,
            timeout=120,
            check=False,
        )

    # -- addresses ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.env['CYRUS_HTTP_PORT']}"

    @property
    def token(self) -> str:
        return self.env["CYRUS_BEARER_TOKEN"]

    def mailroom_env(self, **extra: str) -> dict[str, str]:
        """Settings for ``mailroom``: JMAP contacts alone on 3.13-dev, CardDAV on 3.6."""
        env = {
            "MAILROOM_JMAP_SESSION_URL": self.env["CYRUS_JMAP_SESSION_URL"],
            "MAILROOM_JMAP_TOKEN": self.token,
            "MAILROOM_STATE_DIR": str(self.dir / "mailroom-state"),  # purged with the server
        }
        if self.build.jmap_contacts:
            env["MAILROOM_CONTACTS"] = "jmap"
        else:
            env.update(
                {
                    "MAILROOM_CARDDAV_URL": self.base_url,
                    "MAILROOM_CARDDAV_USERNAME": self.env["CYRUS_USER"],
                    "MAILROOM_CARDDAV_PASSWORD": self.env["CYRUS_PASS"],
                }
            )
        return {**env, **extra}

    def imap(self, admin: bool = False) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", int(self.env["CYRUS_IMAP_PORT"]))
        if admin:
            conn.login(self.env["CYRUS_ADMIN_USER"], self.env["CYRUS_ADMIN_PASS"])
        else:
            conn.login(self.env["CYRUS_USER"], self.env["CYRUS_PASS"])
        return conn

    # -- mail, as an MTA and a phone would ----------------------------------

    def deliver(
        self, sender: str, name: str, subject: str, folder: str = "Screener", **fields: str
    ) -> None:
        """A message from ``sender`` into ``folder`` (``fields``: more header fields,
        ``list_id="<users.example>"`` for List-Id)."""
        message = self._message(sender, name, subject, **fields)
        if self.build is CYRUS_NEXT:
            self._lmtp(sender, message.encode(), folder)
            return
        subprocess.run(
            ["bash", str(SCRIPTS / "deliver-mail.sh"), str(self.dir), folder],
            input=message.encode(),
            env=CLEAN_ENV,
            capture_output=True,
            timeout=60,
            check=True,
        )

    def append(self, sender: str, name: str, subject: str, folder: str, **recipients: str) -> None:
        """Save a message into a folder over IMAP, as a mail client saves Sent and
        Drafts (``to=``, ``cc=``, ``bcc=``: its recipients; To is the user's own
        address otherwise)."""
        conn = self.imap()
        typ, data = conn.append(
            folder,
            None,
            imaplib.Time2Internaldate(time.time()),
            self._message(sender, name, subject, **recipients).encode(),
        )
        conn.logout()
        assert typ == "OK", data

    def _message(self, sender: str, name: str, subject: str, **recipients: str) -> str:
        to = recipients.get("to", f"{self.env['CYRUS_USER']}@localhost")
        extra = "".join(
            f"{field.capitalize()}: {recipients[field]}\r\n"
            for field in ("cc", "bcc")
            if field in recipients
        )
        if "list_id" in recipients:
            extra += f"List-Id: {recipients['list_id']}\r\n"
        return (
            f"From: {name} <{sender}>\r\nTo: {to}\r\n{extra}"
            f"Subject: {subject}\r\nMessage-ID: <{uuid.uuid4().hex}@test>\r\n"
            "Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n"
            f"{subject}\r\n"
        )

    def _lmtp(self, sender: str, message: bytes, folder: str) -> None:
        """Deliver over LMTP (TCP); a folder other than INBOX by plus-address."""
        user = self.env["CYRUS_USER"]
        rcpt = user
        if folder.upper() != "INBOX":
            if folder not in self._postable:
                # Plus-addressed delivery needs the post right on the folder.
                self.ensure_mailbox(folder)
                conn = self.imap()
                typ, _ = conn.setacl(folder, "anyone", "p")
                conn.logout()
                assert typ == "OK", f"cannot allow posting to {folder}"
                self._postable.add(folder)
            rcpt = f"{user}+{folder}"
        with smtplib.LMTP("127.0.0.1", int(self.env["CYRUS_LMTP_PORT"])) as lmtp:
            refused = lmtp.sendmail(sender, [rcpt], message)
        assert not refused, refused

    @property
    def using(self) -> list[str]:
        return [*USING, CONTACTS] if self.build.jmap_contacts else USING

    def jmap(self, *calls: list[Any]) -> list[Any]:
        resp = httpx.post(
            self.base_url + "/jmap/",
            json={"using": self.using, "methodCalls": list(calls)},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        resp.raise_for_status()
        return list(resp.json()["methodResponses"])

    def mailboxes(self) -> dict[str, str]:
        (resp,) = self.jmap(["Mailbox/get", {"accountId": self.account}, "m"])
        return {m["name"]: m["id"] for m in resp[1]["list"]}

    @property
    def account(self) -> str:
        return self.env["CYRUS_USER"]

    def ensure_mailbox(self, name: str) -> str:
        boxes = self.mailboxes()
        if name in boxes:
            return boxes[name]
        (resp,) = self.jmap(
            ["Mailbox/set", {"accountId": self.account, "create": {"n": {"name": name}}}, "c"]
        )
        return str(resp[1]["created"]["n"]["id"])

    def emails_from(self, sender: str) -> dict[str, set[str]]:
        """email id -> mailbox names, for every message from ``sender``."""
        names = {v: k for k, v in self.mailboxes().items()}
        _, get = self.jmap(
            ["Email/query", {"accountId": self.account, "filter": {"from": sender}}, "q"],
            [
                "Email/get",
                {
                    "accountId": self.account,
                    "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                    "properties": ["from", "mailboxIds"],
                },
                "g",
            ],
        )
        return {
            e["id"]: {names[m] for m in e["mailboxIds"]}
            for e in get[1]["list"]
            if e["from"][0]["email"].lower() == sender.lower()
        }

    def mail_of(self, senders: Iterable[str]) -> dict[str, dict[str, set[str]]]:
        """``emails_from`` for many senders at once: one request per hundred
        senders (a search each costs Cyrus as much as one for them all)."""
        wanted = list(dict.fromkeys(s.lower() for s in senders))
        out: dict[str, dict[str, set[str]]] = {s: {} for s in wanted}
        names: dict[str, str] = {}
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            boxes, _, get = self.jmap(
                ["Mailbox/get", {"accountId": self.account, "properties": ["name"]}, "m"],
                [
                    "Email/query",
                    {
                        "accountId": self.account,
                        "filter": {"operator": "OR", "conditions": [{"from": s} for s in chunk]},
                    },
                    "q",
                ],
                [
                    "Email/get",
                    {
                        "accountId": self.account,
                        "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                        "properties": ["from", "mailboxIds"],
                    },
                    "g",
                ],
            )
            names = {m["id"]: m["name"] for m in boxes[1]["list"]}
            for e in get[1]["list"]:
                sender = e["from"][0]["email"].lower()
                if sender in out:
                    out[sender][e["id"]] = {names[m] for m in e["mailboxIds"]}
        return out

    def wait_for_mail_of(
        self, senders: Iterable[str] | Mapping[str, int], count: int = 1, timeout: float = 30
    ) -> dict[str, dict[str, set[str]]]:
        """``wait_for_mail`` for many senders at once (``senders``: how many each, or
        ``count`` for all)."""
        counts = (
            {s.lower(): n for s, n in senders.items()}
            if isinstance(senders, Mapping)
            else {s.lower(): count for s in senders}
        )
        deadline = time.monotonic() + timeout
        while True:
            found = self.mail_of(counts)
            done = all(len(found[s]) >= n for s, n in counts.items())
            if done or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def label(self, email_id: str, label: str, on: bool = True) -> None:
        """Add a triage label with one Email/set, as a phone would (``on=False``: take it off)."""
        box = self.mailboxes()[label]
        patch = {f"mailboxIds/{box}": True if on else None}
        (resp,) = self.jmap(
            ["Email/set", {"accountId": self.account, "update": {email_id: patch}}, "s"]
        )
        assert email_id in (resp[1].get("updated") or {}), resp

    def wait_for_mail(self, sender: str, count: int, timeout: float = 30) -> dict[str, set[str]]:
        """Delivery is asynchronous to the search index: wait for it."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.emails_from(sender)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.2)


def carddav_client(cyrus: Cyrus, http: httpx.AsyncClient) -> CardDavClient:
    return CardDavClient(
        http, cyrus.base_url, cyrus.env["CYRUS_USER"], Secret(cyrus.env["CYRUS_PASS"])
    )
