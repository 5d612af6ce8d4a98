"""The local Fastmail stand-in: JMAP, EventSource and CardDAV on loopback.

A stdlib threading HTTP server (one thread per connection, so a long-lived
EventSource stream never blocks API calls) over the in-memory stores.
``flavour="fastmail"`` mimics Fastmail (absolute URLs, plain eventSourceUrl,
``{"changed":…,"type":…}`` envelopes, no ids, no pings); ``flavour="rfc"``
mimics Cyrus and RFC 8620 (relative URLs, URL template, ``StateChange``,
``id:`` lines, ping events).
"""

from __future__ import annotations

import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any, Literal, Protocol, Self

from mailroom.sandbox import cards as vcard
from mailroom.sandbox.contactstore import ContactStore
from mailroom.sandbox.http import MAX_BODY, Handler, Server
from mailroom.sandbox.jscontacts import ContactCardApi
from mailroom.sandbox.mailmodel import ACCOUNT_ID
from mailroom.sandbox.mailstore import MailStore
from mailroom.sandbox.switches import Switches

Flavour = Literal["fastmail", "rfc"]
CONTACTS = "urn:ietf:params:jmap:contacts"
SUBMISSION = "urn:ietf:params:jmap:submission"


# What ``mailroom setup`` makes for the default categories, named here rather
# than read from the product's category code (the stand-in shares none of it).
DEFAULT_LABELS = ("@ToImbox", "@ToFeed", "@ToPaperTrail", "@ToJail", "@ToPerson")
DEFAULT_MAILBOXES = ("Imbox", "Feed", "Paper Trail", "Jail", "Person")
DEFAULT_GROUPS = ("Imbox", "Feed", "Paper Trail", "Jail", "Person")


class Layout(Protocol):
    """The names a set of categories gives the account (the settings' categories)."""

    @property
    def labels(self) -> Iterable[str]: ...

    @property
    def destinations(self) -> Iterable[str]: ...

    @property
    def contact_groups(self) -> Iterable[str]: ...


class Sandbox:
    """A running stand-in. Use as a context manager, or start()/stop()."""

    def __init__(
        self,
        *,
        flavour: Flavour = "fastmail",
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = "sandbox-token",
        username: str = "user@sandbox.test",
        password: str = "sandbox-password",
        mail: MailStore | None = None,
        event_source: bool = True,
        public_url: str | None = None,
        jmap_contacts: bool | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.flavour = flavour
        self._state: tempfile.TemporaryDirectory[str] | None = None
        self.host = host
        self.port = port
        self.token = token
        self.username = username
        self.password = password
        self.mail = mail or MailStore()
        self.contacts = ContactStore(username)
        # RFC 9610 over the same store: Fastmail has it, Cyrus (the "rfc" flavour) not.
        self.jmap_contacts = flavour == "fastmail" if jmap_contacts is None else jmap_contacts
        self.contacts_api: ContactCardApi | None = None
        if self.jmap_contacts:
            api = ContactCardApi(
                self.contacts, max_get=self.mail.max_get, max_set=self.mail.max_set
            )
            self.contacts_api = api
            self.mail.extensions.update({n: (CONTACTS, m) for n, m in api.methods().items()})
            self.mail.extra_capabilities.add(CONTACTS)
        # The user's sending identities (RFC 8621 §6): their own addresses.
        self.identities: list[str] = [username]
        self.mail.extensions["Identity/get"] = (SUBMISSION, self._identity_get)
        self.mail.extra_capabilities.add(SUBMISSION)
        self.faults: Switches = Switches()  # all off; tests bring their own
        self.event_source = event_source  # False: session without eventSourceUrl
        # What absolute URLs in the session point at (a proxy in front, say).
        self.public_url = public_url
        # Serve HTTPS with this context (a realistic link, in the benchmark).
        self.tls = tls
        # The session resource: its state moves when it changes (RFC 8620 §2);
        # every API answer carries it as sessionState.
        self.session_state = 0
        self.api_path = "/jmap/api/"
        self.api_paths: dict[str, int] = {}  # answers served by each API path
        self.requests: dict[str, int] = {}
        self.request_log: list[tuple[str, float]] = []  # (route, time.monotonic())
        self._requests_lock = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._generation = 0  # bumped to end every open stream
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> Self:
        self._stopping = False
        server = Server((self.host, self.port), Handler)
        server.sandbox = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        self.close_streams()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.reset_connections()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._state is not None:
            self._state.cleanup()
            self._state = None

    def prepare(
        self,
        categories: Layout | None = None,
        *,
        screener: str = "Screener",
        error_label: str = "@MailroomError",
    ) -> None:
        """Leave the account as ``mailroom setup --apply --create-screener`` would
        (the default categories' names unless ``categories`` says otherwise)."""
        labels = DEFAULT_LABELS if categories is None else tuple(categories.labels)
        boxes = DEFAULT_MAILBOXES if categories is None else tuple(categories.destinations)
        groups = DEFAULT_GROUPS if categories is None else tuple(categories.contact_groups)
        extra = ("@ToScreener", "@WholeDomain", "@WholeList")
        for name in (screener, error_label, *extra, *labels, *boxes):
            self.mail.ensure_mailbox(name)
        for group in groups:
            if not self.contacts.groups_named(group):
                uid = str(uuid.uuid4())
                self.contacts.write(f"{uid}.vcf", vcard.new_group(uid, group))

    def set_refusing(self, refusing: bool) -> None:
        """Stop listening (connections are refused) or listen again on the same port."""
        if refusing and self._server is not None:
            self.stop()
        elif not refusing and self._server is None:
            self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset_connections(self) -> None:
        """Reset every open connection (streams included) but keep listening."""
        if self._server is not None:
            self._server.reset_connections()

    def close_streams(self) -> None:
        """End every open EventSource response (a server reset mid-stream)."""
        with self.mail.lock:
            self._generation += 1
            self.mail.changed.notify_all()

    # -- addresses ---------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def session_url(self) -> str:
        return (self.public_url or self.url) + "/jmap/session"

    def env(self, contacts: str = "carddav") -> dict[str, str]:
        """MAILROOM_* settings pointing ``mailroom run`` at this stand-in.

        ``contacts="jmap"``: the API token alone (no CardDAV settings at all).
        """
        if self._state is None:  # the ledger lives and dies with the stand-in
            self._state = tempfile.TemporaryDirectory(prefix="mailroom-sandbox-state-")
        env = {
            "MAILROOM_JMAP_SESSION_URL": self.session_url,
            "MAILROOM_JMAP_TOKEN": self.token,
            "MAILROOM_STATE_DIR": self._state.name,
        }
        if contacts == "carddav":
            env.update(
                {
                    "MAILROOM_CARDDAV_URL": self.url,
                    "MAILROOM_CARDDAV_USERNAME": self.username,
                    "MAILROOM_CARDDAV_PASSWORD": self.password,
                }
            )
        return env

    def count(self, route: str) -> None:
        with self._requests_lock:
            self.requests[route] = self.requests.get(route, 0) + 1
            self.request_log.append((route, time.monotonic()))

    def total_requests(self, *routes: str) -> int:
        with self._requests_lock:
            return sum(v for k, v in self.requests.items() if not routes or k in routes)

    def session_document(self) -> dict[str, Any]:
        base = (self.public_url or self.url) if self.flavour == "fastmail" else ""
        doc: dict[str, Any] = {
            "capabilities": {
                "urn:ietf:params:jmap:core": {
                    "maxSizeUpload": 50_000_000,
                    "maxConcurrentUpload": 4,
                    "maxSizeRequest": MAX_BODY,
                    "maxConcurrentRequests": 4,
                    "maxCallsInRequest": self.mail.max_calls,
                    "maxObjectsInGet": self.mail.max_get,
                    "maxObjectsInSet": self.mail.max_set,
                    "collationAlgorithms": ["i;ascii-casemap"],
                },
                "urn:ietf:params:jmap:mail": {},
                SUBMISSION: {"maxDelayedSend": 0, "submissionExtensions": {}},
                **({CONTACTS: {}} if self.jmap_contacts else {}),
            },
            "accounts": {
                ACCOUNT_ID: {
                    "name": self.username,
                    "isPersonal": True,
                    "isReadOnly": False,
                    "accountCapabilities": {
                        "urn:ietf:params:jmap:mail": {},
                        SUBMISSION: {"maxDelayedSend": 0, "submissionExtensions": {}},
                        **(
                            {CONTACTS: {"maxAddressBooksPerCard": 1, "mayCreateAddressBook": False}}
                            if self.jmap_contacts
                            else {}
                        ),
                    },
                }
            },
            "primaryAccounts": {
                "urn:ietf:params:jmap:mail": ACCOUNT_ID,
                SUBMISSION: ACCOUNT_ID,
                **({CONTACTS: ACCOUNT_ID} if self.jmap_contacts else {}),
            },
            "username": self.username,
            "apiUrl": base + self.api_path,
            "downloadUrl": base + "/jmap/download/{accountId}/{blobId}/{name}?accept={type}",
            "uploadUrl": base + "/jmap/upload/{accountId}/",
            "state": str(self.session_state),
        }
        if self.event_source:
            doc["eventSourceUrl"] = (
                base + "/jmap/event/"
                if self.flavour == "fastmail"
                else "/jmap/eventsource/?types={types}&closeafter={closeafter}&ping={ping}"
            )
        return doc

    def _identity_get(self, args: dict[str, Any]) -> dict[str, Any]:
        identities = [
            {"id": f"i{n}", "name": "", "email": email, "mayDelete": n > 0}
            for n, email in enumerate(self.identities)
        ]
        return {"accountId": ACCOUNT_ID, "state": "0", "list": identities, "notFound": []}

    def stream_generation(self) -> int:
        return self._generation

    @property
    def stopping(self) -> bool:
        return self._stopping


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
