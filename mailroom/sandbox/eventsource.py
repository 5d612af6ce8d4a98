"""The stand-in's EventSource (RFC 8620 §7.3): a state event per change of the
types asked for, pings on the ``rfc`` flavour, replay from ``Last-Event-ID``
as Cyrus does; where the tests' stream switches bend it (closed, silent,
flooded, malformed events, oversized lines), read through
:mod:`mailroom.sandbox.switches`.

A mixin of the request handler (:mod:`mailroom.sandbox.http`), which routes
the stream's requests here.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from mailroom.sandbox.mailmodel import ACCOUNT_ID
from mailroom.sandbox.switches import StreamMode

if TYPE_CHECKING:
    from mailroom.sandbox.server import Sandbox


FLOOD = ":\n" * 32768


def _event_id(states: dict[str, str]) -> str:
    # A modseq-like id: every state only grows, so their sum does too.
    return str(sum(int(v) for v in states.values()))


class EventSourceHandler(BaseHTTPRequestHandler):
    """``GET /eventsource``, one long-lived response per connection."""

    @property
    def sandbox(self) -> Sandbox:
        raise NotImplementedError

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json") -> None:
        raise NotImplementedError

    def _eventsource(self) -> None:
        sandbox = self.sandbox
        asked = self._asked()
        if asked is None:
            return
        wanted, closeafter, ping = asked
        rfc = sandbox.flavour == "rfc"
        # Snapshot before the headers go out: a change the client makes as soon
        # as it sees them must be reported, not absorbed into the snapshot.
        generation = sandbox.stream_generation()
        sent = sandbox.mail.states()
        self._headers()
        faults = sandbox.faults
        try:
            if not self._begin(sent, wanted):
                return
            last_write = time.monotonic()
            while True:
                if faults.stream == "flood":
                    flooded = self._flood(sent, wanted, generation)
                    if flooded is None:
                        return
                    sent = flooded
                    continue
                deadline = last_write + ping if rfc and ping > 0 else None
                current = self._next_states(sent, generation, deadline)
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

    def _begin(self, sent: dict[str, str], wanted: set[str]) -> bool:
        """What a stream starts with; False when it ends right there (or never
        goes on: a half-open peer sends headers, then nothing until stopped)."""
        faults = self.sandbox.faults
        if faults.stream == "close":
            return False
        if faults.stream == "silent":
            self._silent(self.sandbox)
            return False
        if faults.retry_ms is not None:
            self._write(f"retry: {faults.retry_ms}\n\n")
        if faults.stream_prefix:
            self._write(faults.stream_prefix)
        last_id = self.headers.get("Last-Event-ID")
        if self.sandbox.flavour != "rfc":
            self._write_state(sent, wanted, connect=True)
        elif last_id is not None and last_id != _event_id(sent):
            # Replay: Cyrus answers Last-Event-ID with every type changed since.
            self._write_state(sent, wanted)
        return True

    def _headers(self) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()

    def _next_states(
        self, sent: dict[str, str], generation: int, deadline: float | None
    ) -> dict[str, str]:
        """The account's states once they differ from ``sent``, the ping is due,
        the stream is replaced or stopped, or about a second has passed (to
        notice a vanished client)."""
        sandbox = self.sandbox
        mail = sandbox.mail
        with mail.lock:
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
                    break
            return mail.states()

    def _asked(self) -> tuple[set[str], str, int] | None:
        """The stream's query: types, closeafter, ping (None: answered already)."""
        query = parse_qs(urlsplit(self.path).query)
        types_text = (query.get("types") or [""])[0]
        if not types_text:
            self._send(204)  # what Cyrus answers without types
            return None
        wanted = {"Email", "Mailbox"} if types_text == "*" else set(types_text.split(","))
        closeafter = (query.get("closeafter") or ["no"])[0]
        try:
            ping = int((query.get("ping") or ["0"])[0])
        except ValueError:
            self._send(400, b'{"error":"bad ping"}')
            return None
        return wanted, closeafter, ping

    def _flood(
        self, sent: dict[str, str], wanted: set[str], generation: int
    ) -> dict[str, str] | None:
        """64 KiB of comments every 10 ms (6.5 MB/s, 3 million lines a second):
        far past what a real server sends, yet leaving the stand-in's other
        threads the interpreter to answer the API. State events still go out.
        The states sent now (None: the stream is to end)."""
        sandbox = self.sandbox
        self._write(FLOOD)
        time.sleep(0.01)
        with sandbox.mail.lock:
            current = sandbox.mail.states()
        if generation != sandbox.stream_generation() or sandbox.stopping:
            return None
        if current != sent:
            changed = {k: v for k, v in current.items() if sent.get(k) != v}
            if changed.keys() & wanted:
                self._write_state(current, wanted, changed=changed)
        return current

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
