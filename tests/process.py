"""``mailroom run`` as a real child process, with its logs, /health and /metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from mailroom.sandbox.server import free_port


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll a condition until a deadline (an outcome, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def run_mailroom(
    *argv: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``mailroom ARGV`` to its end, output captured (``env``: the whole environment)."""
    return subprocess.run(
        [sys.executable, "-m", "mailroom", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class MailroomProcess:
    """``mailroom run``; first ``mailroom setup --apply --create-screener`` unless told not."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        setup: bool = True,
        args: tuple[str, ...] = (),
        cwd: str | None = None,  # another checkout's package (``python -m`` imports from here)
    ) -> None:
        self.port = free_port()
        full = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MAILROOM_")},
            "MAILROOM_HTTP_PORT": str(self.port),
            "MAILROOM_LOG_FORMAT": "console",
            **env,
        }
        if setup:
            done = subprocess.run(
                [sys.executable, "-m", "mailroom", "setup", "--apply", "--create-screener"],
                env=full,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                cwd=cwd,
            )
            assert done.returncode == 0, done.stdout + done.stderr
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailroom", "run", *args],
            env=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> tuple[int, dict[str, Any]]:
        try:
            resp = httpx.get(self.base + "/health", timeout=5)
        except httpx.HTTPError:
            return 0, {}
        return resp.status_code, resp.json()

    def push_state(self) -> str | None:
        state = self.health()[1].get("eventsource", {}).get("status")
        return str(state) if state is not None else None

    def metrics(self) -> str:
        return httpx.get(self.base + "/metrics", timeout=5).text

    def metric(self, line_start: str) -> float:
        for line in self.metrics().splitlines():
            if line.startswith(line_start + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(timeout=5)
        return code

    def __enter__(self) -> MailroomProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
