"""A real Cyrus IMAP (JMAP + EventSource + CardDAV) for integration tests.

Started through ``../shared/cyrus/start-cyrus.sh`` in a short directory under
/tmp (unix socket paths must stay short and reachable by the cyrus user).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

PROJECT = Path(__file__).resolve().parents[2]
SCRIPTS = PROJECT.parent / "shared" / "cyrus"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]
# cyrdeliver reads CYRUS_USER as the *system* user: never pass ours along.
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


class CyrusUnavailable(Exception):
    pass


def _free_base() -> int:
    for base in range(18100, 19000, 10):
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
    raise CyrusUnavailable("no free port range for Cyrus in 18100-19000")


@dataclass
class Cyrus:
    dir: Path
    env: dict[str, str]

    @classmethod
    def start(cls, name: str, **settings: str) -> Cyrus:
        if not (SCRIPTS / "start-cyrus.sh").exists():
            raise CyrusUnavailable(f"{SCRIPTS}/start-cyrus.sh not found")
        if os.geteuid() != 0:
            raise CyrusUnavailable("start-cyrus.sh needs root (apt and the cyrus user)")
        directory = Path(f"/tmp/mrit-{name}-{uuid.uuid4().hex[:6]}")
        base = _free_base()
        proc = subprocess.run(
            ["bash", str(SCRIPTS / "start-cyrus.sh"), str(directory), str(base)],
            env={**CLEAN_ENV, **settings},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise CyrusUnavailable(f"start-cyrus.sh failed: {tail}")
        env = dict(
            line.split("=", 1)
            for line in (directory / "cyrus.env").read_text().splitlines()
            if "=" in line
        )
        return cls(directory, env)

    def stop(self) -> None:
        subprocess.run(
            ["bash", str(SCRIPTS / "stop-cyrus.sh"), str(self.dir), "--purge"],
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
        return {
            "MAILROOM_JMAP_SESSION_URL": self.env["CYRUS_JMAP_SESSION_URL"],
            "MAILROOM_JMAP_TOKEN": self.token,
            "MAILROOM_CARDDAV_URL": self.base_url,
            "MAILROOM_CARDDAV_USERNAME": self.env["CYRUS_USER"],
            "MAILROOM_CARDDAV_PASSWORD": self.env["CYRUS_PASS"],
            **extra,
        }

    # -- mail, as an MTA and a phone would ----------------------------------

    def deliver(self, sender: str, name: str, subject: str, folder: str = "Screener") -> None:
        message = (
            f"From: {name} <{sender}>\r\nTo: {self.env['CYRUS_USER']}@localhost\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{uuid.uuid4().hex}@test>\r\n"
            "Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n"
            f"{subject}\r\n"
        )
        subprocess.run(
            ["bash", str(SCRIPTS / "deliver-mail.sh"), str(self.dir), folder],
            input=message.encode(),
            env=CLEAN_ENV,
            capture_output=True,
            timeout=60,
            check=True,
        )

    def jmap(self, *calls: list[Any]) -> list[Any]:
        resp = httpx.post(
            self.base_url + "/jmap/",
            json={"using": USING, "methodCalls": list(calls)},
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

    def label(self, email_id: str, label: str) -> None:
        """Add a triage label with one Email/set, as a phone would."""
        box = self.mailboxes()[label]
        (resp,) = self.jmap(
            [
                "Email/set",
                {"accountId": self.account, "update": {email_id: {f"mailboxIds/{box}": True}}},
                "s",
            ]
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


def dav(cyrus: Cyrus) -> Mapping[str, str]:
    return {"user": cyrus.env["CYRUS_USER"], "password": cyrus.env["CYRUS_PASS"]}
