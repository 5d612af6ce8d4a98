"""The stand-in's HTTP: a threading server (one thread per connection, so a
long-lived EventSource stream never blocks API calls) and the handler that
routes each request (the JMAP session and API, the admin routes, EventSource,
CardDAV), checks its credentials and reads the tests' switches
(:mod:`mailroom.sandbox.switches`; all off as shipped)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import socket
import struct
import threading
import time
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from mailroom.sandbox.contactstore import DavError
from mailroom.sandbox.eventsource import EventSourceHandler
from mailroom.sandbox.mailmodel import RequestError
from mailroom.sandbox.switches import Route

if TYPE_CHECKING:
    from mailroom.sandbox.server import Sandbox

MAX_BODY = 10 * 1024 * 1024


class Server(ThreadingHTTPServer):
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


class Handler(EventSourceHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, Nagle plus
    # delayed ACKs add ~40 ms to every loopback request.
    disable_nagle_algorithm = True
    server: Server
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
