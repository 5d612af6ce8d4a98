"""The local Fastmail stand-in: JMAP, EventSource and CardDAV on loopback.

A stdlib threading HTTP server (one thread per connection, so a long-lived
EventSource stream never blocks API calls) over the in-memory stores.
``flavour="fastmail"`` mimics Fastmail (absolute URLs, plain eventSourceUrl,
``{"changed":…,"type":…}`` envelopes, no ids, no pings); ``flavour="rfc"``
mimics Cyrus and RFC 8620 (relative URLs, URL template, ``StateChange``,
``id:`` lines, ping events).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import socket
import ssl
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, urlsplit

from mailroom.sandbox import cards as vcard
from mailroom.sandbox.contactstore import ContactStore, DavError
from mailroom.sandbox.faults import Faults, Route, StreamMode
from mailroom.sandbox.jscontacts import ContactCardApi
from mailroom.sandbox.mailstore import ACCOUNT_ID, MailStore, RequestError

Flavour = Literal["fastmail", "rfc"]
CONTACTS = "urn:ietf:params:jmap:contacts"
SUBMISSION = "urn:ietf:params:jmap:submission"

MAX_BODY = 10 * 1024 * 1024


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
        self.faults = Faults()
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
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._generation = 0  # bumped to end every open stream
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> Sandbox:
        self._stopping = False
        server = _Server((self.host, self.port), _Handler)
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
        extra = ("@ToScreener", "@WholeDomain")
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

    def __enter__(self) -> Sandbox:
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
        return self.url + "/jmap/session"

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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: Sandbox

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        request, address = super().get_request()
        tls = self.sandbox.tls
        if tls is not None:
            # The handshake runs in the connection's own thread, on first read,
            # so a slow client never holds up accepting the next one.
            request = tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        return request, address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        # The "drop" fault: accept the connection, then close it unanswered.
        return not self.sandbox.faults.drop

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer is routine here (faults do it on
        # purpose); anything else still gets the standard traceback.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    def reset_connections(self) -> None:
        """Reset every open connection, as a crashed or restarted server does."""
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                # SO_LINGER 0: close with RST, not FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, Nagle plus
    # delayed ACKs add ~40 ms to every loopback request.
    disable_nagle_algorithm = True
    server: _Server
    body: bytes = b""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the stand-in is quiet; tests read its counters instead

    @property
    def sandbox(self) -> Sandbox:
        return self.server.sandbox

    # -- plumbing -------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if length < 0 or length > MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        faults = self.sandbox.faults
        huge = faults.take_huge() if faults.delay_route in (None, self._route()) else 0
        self.send_response(status)
        if body or status not in (204, 304):
            self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if huge:
            self._send_huge(body, huge)
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            faults = self.sandbox.faults
            if faults.trickle and faults.delay_route in (None, self._route()):
                for i in range(0, len(body), 64):
                    self.wfile.write(body[i : i + 64])
                    self.wfile.flush()
                    time.sleep(faults.trickle)
                return
            self.wfile.write(body)

    def _send_huge(self, body: bytes, size: int) -> None:
        """The answer, then ``size`` bytes of whitespace (still valid JSON), unannounced."""
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.wfile.write(body)
        pad = b" " * 65536
        for _ in range(0, size, len(pad)):
            self.wfile.write(pad)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode())

    def _route(self) -> Route | Literal["admin"]:
        path = urlsplit(self.path).path
        if path.startswith("/_sandbox/"):
            return "admin"
        if path.startswith("/jmap/event"):
            return "eventsource"
        if path == "/jmap/session" or path == "/.well-known/jmap":
            return "session"
        if path.startswith("/jmap/"):
            return "api"
        return "carddav"

    def _forced(self, route: Route) -> bool:
        forced = self.sandbox.faults.take_forced(route)
        if forced is None:
            return False
        body = b"" if forced.status == 204 else json.dumps({"error": forced.status}).encode()
        self._send(forced.status, body, headers=forced.headers)
        return True

    def _bearer_ok(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.sandbox.token}"

    def _basic_ok(self) -> bool:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == self.sandbox.username and password == self.sandbox.password

    def _dispatch(self) -> None:
        route = self._route()
        self.sandbox.count(route)
        # Read the body before any early answer, or keep-alive desyncs.
        body = self._read_body()
        if body is None:
            self.close_connection = True
            self._send(413, b'{"error":"bad length"}')
            return
        self.body = body
        faults = self.sandbox.faults
        if faults.delay and faults.delay_route in (None, route):
            time.sleep(faults.delay)
        if route != "admin" and self._forced(route):
            return
        if route == "carddav":
            self._carddav()
            return
        if not self._bearer_ok():
            self._send(401, b'{"error":"unauthorized"}', headers={"WWW-Authenticate": "Bearer"})
            return
        if route == "admin":
            self._admin()
        elif route == "session":
            self._json(200, self.sandbox.session_document())
        elif route == "eventsource":
            self._eventsource()
        elif self.command == "POST" and urlsplit(self.path).path.startswith("/jmap/api"):
            self._api()
        else:
            self._send(404, b'{"error":"not found"}')

    do_GET = do_POST = do_PUT = do_DELETE = do_PROPFIND = do_REPORT = _dispatch

    # -- JMAP API -------------------------------------------------------------

    def _api(self) -> None:
        try:
            request = json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._json(400, {"type": "urn:ietf:params:jmap:error:notJSON", "status": 400})
            return
        try:
            response = self.sandbox.mail.handle(request)
        except RequestError as exc:
            self._json(400, {"type": exc.type, "status": 400, "detail": exc.detail})
            return
        path = urlsplit(self.path).path
        with self.sandbox._requests_lock:  # which API URL served it (not a request count)
            self.sandbox.api_paths[path] = self.sandbox.api_paths.get(path, 0) + 1
        self._json(200, {**response, "sessionState": str(self.sandbox.session_state)})

    def _admin(self) -> None:
        """``POST /_sandbox/deliver`` {"from", "name"?, "subject"?, "mailboxes"?}: add mail."""
        if self.command != "POST" or urlsplit(self.path).path != "/_sandbox/deliver":
            self._send(404, b'{"error":"not found"}')
            return
        try:
            spec = json.loads(self.body)
            sender = spec["from"]
            if not isinstance(sender, str) or "@" not in sender:
                raise ValueError("from")
            email_id = self.sandbox.mail.deliver(
                sender,
                name=str(spec.get("name", "")),
                subject=str(spec.get("subject", "")),
                mailboxes=list(spec.get("mailboxes") or ["Screener"]),
            )
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
            self._json(400, {"error": 'expected {"from": "someone@example.com", ...}'})
            return
        self._json(201, {"id": email_id})

    # -- EventSource ----------------------------------------------------------

    def _eventsource(self) -> None:
        sandbox = self.sandbox
        query = parse_qs(urlsplit(self.path).query)
        types_text = (query.get("types") or [""])[0]
        if not types_text:
            self._send(204)  # what Cyrus answers without types
            return
        wanted = {"Email", "Mailbox"} if types_text == "*" else set(types_text.split(","))
        closeafter = (query.get("closeafter") or ["no"])[0]
        try:
            ping = int((query.get("ping") or ["0"])[0])
        except ValueError:
            self._send(400, b'{"error":"bad ping"}')
            return
        rfc = sandbox.flavour == "rfc"
        # Snapshot before the headers go out: a change the client makes as soon
        # as it sees them must be reported, not absorbed into the snapshot.
        generation = sandbox.stream_generation()
        sent = sandbox.mail.states()
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        mail = sandbox.mail
        faults = sandbox.faults
        try:
            if faults.stream == "close":
                return
            if faults.stream == "silent":
                # A half-open peer: headers, then nothing, ever (until stopped).
                self._silent(sandbox)
                return
            if faults.retry_ms is not None:
                self._write(f"retry: {faults.retry_ms}\n\n")
            if faults.stream_prefix:
                self._write(faults.stream_prefix)
            last_id = self.headers.get("Last-Event-ID")
            if not rfc:
                self._write_state(sent, wanted, connect=True)
            elif last_id is not None and last_id != _event_id(sent):
                # Replay: Cyrus answers Last-Event-ID with every type changed since.
                self._write_state(sent, wanted)
            last_write = time.monotonic()
            while True:
                if faults.stream == "flood":
                    # 64 KiB of comments every 10 ms (6.5 MB/s, 3 million lines a
                    # second): far past what a real server sends, yet leaving the
                    # stand-in's other threads the interpreter to answer the API.
                    self._write(FLOOD)
                    time.sleep(0.01)
                    with mail.lock:
                        current = mail.states()
                    if generation != sandbox.stream_generation() or sandbox.stopping:
                        return
                    if current != sent:
                        changed = {k: v for k, v in current.items() if sent.get(k) != v}
                        sent = current
                        if changed.keys() & wanted:
                            self._write_state(current, wanted, changed=changed)
                    continue
                with mail.lock:
                    deadline = last_write + ping if rfc and ping > 0 else None
                    while (
                        mail.states() == sent
                        and generation == sandbox.stream_generation()
                        and not sandbox.stopping
                    ):
                        timeout = 1.0 if deadline is None else deadline - time.monotonic()
                        if timeout <= 0:
                            break
                        mail.changed.wait(min(timeout, 1.0))
                        if deadline is None:
                            # Notice a vanished client within a second or so.
                            break
                    current = mail.states()
                if generation != sandbox.stream_generation() or sandbox.stopping:
                    return
                mode: StreamMode = faults.stream  # flipped by tests at any time
                if mode == "silent":
                    sent = current
                    continue
                size = faults.take_oversized()
                if size:
                    self._write("data: " + "x" * size + "\n\n")
                if current != sent:
                    changed = {k: v for k, v in current.items() if sent.get(k) != v}
                    sent = current
                    if changed.keys() & wanted:
                        self._write_state(current, wanted, changed=changed)
                        last_write = time.monotonic()
                        if closeafter == "state" or mode == "close-after-event":
                            return
                elif rfc and ping > 0 and time.monotonic() - last_write >= ping:
                    self._write(f'event: ping\ndata: {{"interval":{ping}}}\n\n')
                    last_write = time.monotonic()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return

    @staticmethod
    def _silent(sandbox: Sandbox) -> None:
        generation = sandbox.stream_generation()
        with sandbox.mail.lock:
            while generation == sandbox.stream_generation() and not sandbox.stopping:
                sandbox.mail.changed.wait(1.0)

    def _write(self, text: str) -> None:
        self.wfile.write(text.encode())
        self.wfile.flush()

    def _write_state(
        self,
        states: dict[str, str],
        wanted: set[str],
        *,
        connect: bool = False,
        changed: dict[str, str] | None = None,
    ) -> None:
        faults = self.sandbox.faults
        if faults.take_malformed():
            self._write('event: state\ndata: {"changed": {broken\n\n')
            return
        types = {k: v for k, v in (changed or states).items() if k in wanted}
        if self.sandbox.flavour == "fastmail":
            data = {"changed": {ACCOUNT_ID: types}, "type": "connect" if connect else "change"}
            self._write(f"event: state\ndata: {json.dumps(data)}\n\n")
        else:
            data = {"@type": "StateChange", "changed": {ACCOUNT_ID: types}}
            event_id = faults.event_id if faults.event_id is not None else _event_id(states)
            self._write(f"id: {event_id}\nevent: state\ndata: {json.dumps(data)}\n\n")

    # -- CardDAV --------------------------------------------------------------

    def _carddav(self) -> None:
        store = self.sandbox.contacts
        path = urlsplit(self.path).path
        if path == "/.well-known/carddav" and self.command in ("GET", "PROPFIND"):
            self._send(301, headers={"Location": store.principal_path})
            return
        if not self._basic_ok():
            self._send(401, b"", headers={"WWW-Authenticate": 'Basic realm="sandbox"'})
            return
        xml = "application/xml; charset=utf-8"
        try:
            if self.command == "PROPFIND":
                text = store.propfind(path, self.headers.get("Depth", "0"))
                self._send(207, text.encode(), xml)
            elif self.command == "REPORT":
                self._send(207, store.report(path, self.body).encode(), xml)
            elif self.command == "GET":
                wants_v4 = "version=4.0" in self.headers.get("Accept", "").replace(" ", "")
                card = store.get(path, "4.0" if wants_v4 else "3.0")
                self._send(
                    200, card.text.encode(), "text/vcard; charset=utf-8", {"ETag": card.etag}
                )
            elif self.command == "PUT":
                body = self.body.decode("utf-8", errors="replace")
                status, etag = store.put(
                    path, body, self.headers.get("If-Match"), self.headers.get("If-None-Match")
                )
                self._send(status, headers={"ETag": etag})
            elif self.command == "DELETE":
                store.delete(path, self.headers.get("If-Match"))
                self._send(204)
            else:
                self._send(405)
        except DavError as exc:
            self._send(exc.status)


FLOOD = ":\n" * 32768


def _event_id(states: dict[str, str]) -> str:
    # A modseq-like id: every state only grows, so their sum does too.
    return str(sum(int(v) for v in states.values()))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
