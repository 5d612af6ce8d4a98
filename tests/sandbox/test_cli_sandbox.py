"""``mailroom sandbox`` prints working settings and stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx

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
