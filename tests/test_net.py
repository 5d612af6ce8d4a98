"""The shared HTTP layer: kept-alive connections, the stale-connection retry, TLS."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from mailroom.net import Channel, RetryExhausted, TransportFailure, api_client
from tests.conftest import Harness, open_harness
from tests.faultproxy import FaultProxy
from tests.faults import FaultySandbox

pytestmark = pytest.mark.anyio

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"


class ClosesIdleConnections:
    """Answers the first request on each connection, then closes it unanswered:
    what a server does to a kept-alive connection it timed out just as we reuse it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    @staticmethod
    def _one(conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            conn.sendall(OK)
            conn.recv(4096)  # the next request on this connection: closed unanswered

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def closing_server() -> Iterator[ClosesIdleConnections]:
    server = ClosesIdleConnections()
    yield server
    server.close()


def _translate(exc: TransportFailure | RetryExhausted) -> Exception:
    return RuntimeError(str(exc))


async def test_a_closed_kept_alive_connection_is_retried_once_on_a_new_one(
    closing_server: ClosesIdleConnections,
) -> None:
    url = f"http://127.0.0.1:{closing_server.port}/"
    async with api_client() as http:
        channel = Channel(http, _translate)
        for _ in range(3):
            response = await channel.send("GET", url, what="probe")
            assert response.text == "ok"
        assert closing_server.connections == 3  # each reuse failed and was redone
        assert channel.requests_made == 3


async def test_a_request_unsafe_to_repeat_is_not_retried(
    closing_server: ClosesIdleConnections,
) -> None:
    url = f"http://127.0.0.1:{closing_server.port}/"
    async with api_client() as http:
        channel = Channel(http, _translate)
        await channel.send("POST", url, what="create")
        with pytest.raises(RuntimeError, match="create: "):
            await channel.send("POST", url, what="create", repeatable=False)
        assert closing_server.connections == 1


def test_api_connections_outlive_the_poll_interval() -> None:
    # httpx's default drops idle connections after 5 s: a handshake every pass.
    client = api_client(poll_interval=60)
    pool = client._transport._pool  # type: ignore[attr-defined]
    assert pool._keepalive_expiry > 60


async def test_a_whole_pass_over_tls_reuses_one_connection(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    with FaultProxy("127.0.0.1", 1) as proxy:
        public = f"https://127.0.0.1:{proxy.port}"
        with FaultySandbox(tls=server_tls, public_url=public) as sb:
            proxy.target = ("127.0.0.1", sb.port)
            sb.mail.ensure_mailbox("Screener")
            async with httpx.AsyncClient(verify=client_tls, timeout=10) as http:
                from mailroom.contacts.book import ContactsBackend

                h: Harness = await open_harness(sb, http, ContactsBackend.JMAP, base=public)
                before = proxy.connections_accepted
                for n in range(3):
                    eid = sb.mail.deliver(f"tls{n}@x.example")
                    sb.mail.set_mailboxes(eid, {"Screener", "@ToFeed"})
                    result = await h.triage.run_pass()
                    assert result.senders_triaged == 1
                    assert sb.mail.mailbox_names(eid) == {"Feed"}
                assert proxy.connections_accepted == before  # no new TCP or TLS handshake


def test_the_service_over_https_trusts_the_ca_in_ssl_cert_file(tmp_path: Path) -> None:
    from tests.process import MailroomProcess, wait_until

    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with FaultySandbox(tls=server_tls) as sb:
        sb.mail.ensure_mailbox("Screener")
        env = {
            **sb.env("jmap"),  # the API token alone: contacts over JMAP
            "SSL_CERT_FILE": str(ca_file),
            "MAILROOM_DEBOUNCE_SECONDS": "0.2",
        }
        assert env["MAILROOM_JMAP_SESSION_URL"].startswith("https://")
        with MailroomProcess(env) as mr:
            assert wait_until(lambda: mr.push_state() == "connected", 30), mr.log
            eid = sb.mail.deliver("secure@x.example", name="Secure Co")
            sb.mail.set_mailboxes(eid, {"Screener", "@ToFeed"})
            assert wait_until(lambda: sb.mail.mailbox_names(eid) == {"Feed"}, 30), mr.log
            assert sb.contacts.groups_of_address("secure@x.example") == {"Feed"}
            assert "backend=jmap" in mr.log
