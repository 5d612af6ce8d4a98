"""Mailroom's pass run in-process against Cyrus 3.13-dev over JMAP contacts, and what to read back.

The account is shared by every test of a session, so each test uses its own
sender addresses (and its own categories when it changes the account's
rights).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from mailroom.account.categories import DEFAULT_CATEGORIES_JSON, parse_categories
from mailroom.account.provisioning import Provisioner
from mailroom.contacts import uids
from mailroom.core.secret import Secret
from mailroom.jmap.client import JmapClient
from mailroom.jmap.contacts import JmapContactBook
from mailroom.jmap.jscontact import email_phrase
from mailroom.jmap.session import Session
from mailroom.triage.workflow import Triage, TriageConfig
from tests.integration.cyrus import Cyrus

LABELS = {
    "Imbox": "@ToImbox",
    "Feed": "@ToFeed",
    "Paper Trail": "@ToPaperTrail",
    "Jail": "@ToJail",
    "Person": "@ToPerson",
}


class CappedJmap(JmapClient):
    """A client that honours smaller limits than the server advertises."""

    caps: dict[str, int] = {}

    @property
    def session(self) -> Session:
        real = super().session
        return dataclasses.replace(
            real,
            max_calls_in_request=self.caps.get("max_calls_in_request", real.max_calls_in_request),
            max_objects_in_get=self.caps.get("max_objects_in_get", real.max_objects_in_get),
            max_objects_in_set=self.caps.get("max_objects_in_set", real.max_objects_in_set),
        )


@dataclass
class NextAccount:
    cyrus: Cyrus
    jmap: JmapClient
    book: JmapContactBook
    triage: Triage

    # -- reading back, over JMAP --------------------------------------------------------

    def cards_with(self, address: str) -> list[dict[str, Any]]:
        """Every contact card holding exactly ``address``."""
        _, got = self.cyrus.jmap(
            [
                "ContactCard/query",
                {"accountId": self.cyrus.account, "filter": {"email": email_phrase(address)}},
                "q",
            ],
            [
                "ContactCard/get",
                {
                    "accountId": self.cyrus.account,
                    "#ids": {"resultOf": "q", "name": "ContactCard/query", "path": "/ids"},
                },
                "g",
            ],
        )
        return [
            c
            for c in got[1]["list"]
            if address.lower()
            in {str(e.get("address", "")).lower() for e in (c.get("emails") or {}).values()}
        ]

    def groups(self) -> dict[str, dict[str, Any]]:
        """Every group card by name."""
        _, got = self.cyrus.jmap(
            [
                "ContactCard/query",
                {"accountId": self.cyrus.account, "filter": {"kind": "group"}},
                "q",
            ],
            [
                "ContactCard/get",
                {
                    "accountId": self.cyrus.account,
                    "#ids": {"resultOf": "q", "name": "ContactCard/query", "path": "/ids"},
                },
                "g",
            ],
        )
        return {str((g.get("name") or {}).get("full")): g for g in got[1]["list"]}

    def groups_of(self, address: str) -> set[str]:
        """The groups the sender's one contact is in (asserts there is exactly one)."""
        cards = self.cards_with(address)
        assert len(cards) == 1, f"{address}: {len(cards)} contacts"
        uid = cards[0]["uid"]
        return {
            name
            for name, group in self.groups().items()
            if uids.is_member([k for k, v in (group.get("members") or {}).items() if v], uid)
        }

    def member_keys(self, group: str, uid: str) -> list[str]:
        members = self.groups()[group].get("members") or {}
        return uids.keys_for([k for k, v in members.items() if v], uid)


async def open_account(
    cyrus: Cyrus,
    http: httpx.AsyncClient,
    *,
    categories: str = DEFAULT_CATEGORIES_JSON,
    error_label: str = "@MailroomError",
    caps: dict[str, int] | None = None,
    dry_run: bool = False,
) -> NextAccount:
    """Mailroom's clients on the account, after `mailroom setup --apply --create-screener`."""
    jmap = CappedJmap(http, cyrus.env["CYRUS_JMAP_SESSION_URL"], Secret(cyrus.token))
    jmap.caps = dict(caps or {})
    await jmap.discover()
    book = JmapContactBook(jmap)
    await book.open()
    config = TriageConfig(parse_categories(categories), "Screener", error_label)
    await Provisioner(jmap, book, config).provision(create_screener=True)
    triage = Triage(jmap, book, config, dry_run=dry_run)
    await triage.setup()
    return NextAccount(cyrus, jmap, book, triage)


def tagged_categories(tag: str, *names: str) -> str:
    return json.dumps([{"name": f"{n}{tag}"} for n in names])


def unique(local: str) -> str:
    return f"{local}-{uuid.uuid4().hex[:6]}@example.org"
