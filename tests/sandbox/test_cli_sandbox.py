"""``mailroom sandbox`` prints working settings and stops on SIGTERM."""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import trustme

from mailroom.sandbox.server import free_port


def test_sandbox_command_prints_settings_that_work() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailroom", "sandbox", "--port", str(port), "--seed"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        exports: dict[str, str] = {}
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(("export ", "# export ")):
                key, _, value = line.split("export ", 1)[1].strip().partition("=")
                exports[key] = value
            if line.startswith("# Deliver mail"):
                break
        # The token alone, and (commented) the CardDAV settings it also serves.
        assert {"MAILROOM_JMAP_TOKEN", "MAILROOM_CARDDAV_PASSWORD"} <= set(exports)
        session = httpx.get(
            exports["MAILROOM_JMAP_SESSION_URL"],
            headers={"Authorization": f"Bearer {exports['MAILROOM_JMAP_TOKEN']}"},
            timeout=10,
        )
        assert session.status_code == 200
        assert session.json()["apiUrl"] == f"http://127.0.0.1:{port}/jmap/api/"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_sandbox_over_https_for_a_service_elsewhere(tmp_path: Path) -> None:
    """With a certificate it serves HTTPS, its session naming the public address
    (a service in another container refuses plain http beyond loopback)."""
    ca = trustme.CA()
    issued = ca.issue_cert("sandbox.test", "127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(b"".join(b.bytes() for b in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    port = free_port()
    alone = subprocess.run(
        [sys.executable, "-m", "mailroom", "sandbox", "--certificate", str(cert)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert alone.returncode == 2 and "--certificate and --key go together" in alone.stderr
    argv = ["--port", str(port), "--certificate", str(cert), "--key", str(key)]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailroom",
            "sandbox",
            *argv,
            "--public-url",
            "https://sandbox.test:9",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        said = next(line for line in proc.stdout if "MAILROOM_JMAP_SESSION_URL" in line)
        assert said.strip().endswith("=https://sandbox.test:9/jmap/session")
        trust = ssl.create_default_context()
        ca.configure_trust(trust)
        session = httpx.get(
            f"https://127.0.0.1:{port}/jmap/session",
            headers={"Authorization": "Bearer sandbox-token"},
            timeout=10,
            verify=trust,
        )
        assert session.json()["apiUrl"] == "https://sandbox.test:9/jmap/api/"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
