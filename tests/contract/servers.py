"""One face for the two JMAP Contacts servers the contract pins: the stand-in and Cyrus 3.13-dev.

Each test in this package speaks raw JMAP and CardDAV to a ``ContactsServer``
and asserts what the server does, so the stand-in cannot drift from the real
server Mailroom is meant for.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from mailroom.sandbox.contactstore import SHARED_BOOK
from tests.faults import FaultySandbox
from tests.integration.cyrus import Cyrus

CARDDAV_NS = "urn:ietf:params:xml:ns:carddav"


class ContactsServer(Protocol):
    name: str

    def jmap(self, *calls: list[Any]) -> list[Any]:
        """Method responses to ``calls`` (``[name, args, id]``; accountId is filled in)."""
        ...

    def dav_url(self) -> str: ...

    def dav_auth(self) -> tuple[str, str]: ...

    def read_only_card(self, address: str) -> str:
        """A contact with ``address`` in a read-only address book; its card id."""
        ...

    def max_objects_in_set(self) -> int: ...


@dataclass
class StandIn:
    sandbox: FaultySandbox
    name: str = "stand-in"

    def jmap(self, *calls: list[Any]) -> list[Any]:
        body = {
            "using": [
                "urn:ietf:params:jmap:core",
                "urn:ietf:params:jmap:mail",
                "urn:ietf:params:jmap:contacts",
            ],
            "methodCalls": [[n, {"accountId": "u1", **a}, i] for n, a, i in calls],
        }
        resp = httpx.post(
            self.sandbox.url + "/jmap/api/",
            json=body,
            headers={"Authorization": f"Bearer {self.sandbox.token}"},
            timeout=30,
        )
        resp.raise_for_status()
        return list(resp.json()["methodResponses"])

    def dav_url(self) -> str:
        return self.sandbox.url + self.sandbox.contacts.book_path

    def dav_auth(self) -> tuple[str, str]:
        return self.sandbox.username, self.sandbox.password

    def read_only_card(self, address: str) -> str:
        # Somebody else's book, shared read-only: its cards arrive from outside.
        card_uid = str(uuid.uuid4())
        name = f"{uuid.uuid4()}.vcf"
        self.sandbox.contacts.write(
            name,
            f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{card_uid}\r\nFN:\r\nN:;;;;\r\n"
            f"EMAIL;TYPE=INTERNET:{address}\r\nEND:VCARD\r\n",
            book=SHARED_BOOK,
        )
        return self.sandbox.contacts_api.card_id(name) if self.sandbox.contacts_api else ""

    def max_objects_in_set(self) -> int:
        return self.sandbox.mail.max_set


@dataclass
class CyrusNext:
    cyrus: Cyrus
    name: str = "cyrus-next"

    def jmap(self, *calls: list[Any]) -> list[Any]:
        return self.cyrus.jmap(
            *([n, {"accountId": self.cyrus.account, **a}, i] for n, a, i in calls)
        )

    def dav_url(self) -> str:
        return f"{self.cyrus.base_url}/dav/addressbooks/user/{self.cyrus.account}/Default/"

    def dav_auth(self) -> tuple[str, str]:
        return self.cyrus.env["CYRUS_USER"], self.cyrus.env["CYRUS_PASS"]

    def read_only_card(self, address: str) -> str:
        (made,) = self.jmap(
            ["AddressBook/set", {"create": {"b": {"name": f"Shared {uuid.uuid4().hex[:6]}"}}}, "b"]
        )
        book = made[1]["created"]["b"]["id"]
        (card,) = self.jmap(
            [
                "ContactCard/set",
                {"create": {"c": new_card(address, addressBookIds={book: True})}},
                "c",
            ]
        )
        card_id = str(card[1]["created"]["c"]["id"])
        # The administrator takes the write rights away, as a share does.
        conn = self.cyrus.imap(admin=True)
        typ, _ = conn.setacl(
            f"user/{self.cyrus.account}/#addressbooks/{book}", self.cyrus.account, "lrs"
        )
        conn.logout()
        assert typ == "OK"
        return card_id

    def max_objects_in_set(self) -> int:
        resp = httpx.get(
            self.cyrus.env["CYRUS_JMAP_SESSION_URL"],
            headers={"Authorization": f"Bearer {self.cyrus.token}"},
            timeout=30,
        )
        return int(resp.json()["capabilities"]["urn:ietf:params:jmap:core"]["maxObjectsInSet"])


def new_card(address: str | None = None, **extra: Any) -> dict[str, Any]:
    card: dict[str, Any] = {"@type": "Card", "version": "1.0", "uid": str(uuid.uuid4())}
    if address is not None:
        card["emails"] = {"e": {"@type": "EmailAddress", "address": address}}
    card.update(extra)
    return card


def new_group(**extra: Any) -> dict[str, Any]:
    return new_card(
        **{"kind": "group", "name": {"@type": "Name", "full": "G"}, "members": {}, **extra}
    )


def dav_query(server: ContactsServer, props: str, filter_: str) -> str:
    """An addressbook-query REPORT on the default book; the multistatus text."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<c:addressbook-query xmlns:d="DAV:" xmlns:c="{CARDDAV_NS}">'
        f"<d:prop>{props}</d:prop>{filter_}</c:addressbook-query>"
    )
    resp = httpx.request(
        "REPORT",
        server.dav_url(),
        content=body,
        auth=server.dav_auth(),
        headers={"Depth": "1", "Content-Type": "application/xml"},
        timeout=30,
    )
    assert resp.status_code == 207, resp.text
    return resp.text


def dav_cards(server: ContactsServer, version: str = "3.0") -> dict[str, str]:
    """Every card of the default book over CardDAV: UID -> vCard text."""
    listing = dav_query(server, "<d:getetag/>", "<c:filter/>")
    headers = {"Accept": f"text/vcard; version={version}"} if version == "4.0" else {}
    out = {}
    for href in re.findall(r"<(?:\w+:)?href>([^<]+\.vcf)</(?:\w+:)?href>", listing):
        got = httpx.get(
            httpx.URL(server.dav_url()).join(href), auth=server.dav_auth(), headers=headers
        )
        text = got.text.replace("\r\n ", "").replace("\n ", "")  # unfolded
        match = re.search(r"^UID(?:;[^:]*)?:(.*?)\r?$", text, re.M)
        if match:
            out[match.group(1)] = text
    return out


def dav_put(server: ContactsServer, text: str, uid: str) -> None:
    resp = httpx.put(
        server.dav_url() + f"{uid}.vcf",
        content=text,
        auth=server.dav_auth(),
        headers={"Content-Type": "text/vcard; charset=utf-8", "If-None-Match": "*"},
        timeout=30,
    )
    assert resp.status_code in (201, 204), resp.status_code


def lines(text: str, prop: str) -> list[str]:
    """The values of every ``prop`` line of a vCard (parameters dropped)."""
    pattern = re.compile(rf"^{re.escape(prop)}(?:;[^:]*)?:(.*?)\r?$", re.M | re.I)
    return pattern.findall(text)
