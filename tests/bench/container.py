"""The container image's numbers (``make bench``, where podman runs as root):
how long ``make container-image`` takes from nothing but the base root, how
big the image is, how soon the container answers /health against the
stand-in, and its idle RSS (the service inside, read from the host's /proc)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.container.test_container import LIMITS, free_port
from tests.faults import FaultySandbox
from tests.process import wait_until

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/mailroom:bench"


def available() -> bool:
    return shutil.which("podman") is not None and os.geteuid() == 0


def _podman(*args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=True
    )
    return done.stdout


def _rss_mb(pid: int) -> float:
    """The RSS of ``pid`` and every process under it (the init and the service)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
        for task in Path(f"/proc/{p}/task").iterdir():
            children = (task / "children").read_text().split()
            todo += [int(c) for c in children]
    return round(total, 1)


def bench_container(idle_seconds: float) -> dict[str, Any]:
    _podman("image", "rm", "--force", IMAGE)
    started = time.monotonic()
    subprocess.run(
        # From the base root with nothing cached: the wheel built, every
        # dependency downloaded and installed.
        [
            "make",
            "--no-print-directory",
            "container-image",
            f"IMAGE={IMAGE}",
            "BUILD_FLAGS=--no-cache",
        ],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=900,
    )
    built = time.monotonic() - started
    size = int(json.loads(_podman("image", "inspect", IMAGE))[0]["Size"])
    name = f"mailroom-bench-{uuid.uuid4().hex[:8]}"
    with FaultySandbox() as sb:
        sb.prepare()
        port = free_port()
        env = {**sb.env(), "MAILROOM_HTTP_HOST": "127.0.0.1", "MAILROOM_HTTP_PORT": str(port)}
        env.pop("MAILROOM_STATE_DIR", None)
        flags = [f"--env={k}={v}" for k, v in env.items()]
        started = time.monotonic()
        _podman(
            "run", "--detach", f"--name={name}", "--network=host", "--read-only",
            "--cap-drop=ALL", *LIMITS, *flags, IMAGE,
        )  # fmt: skip
        try:

            def answers() -> bool:
                try:
                    resp = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                except httpx.HTTPError:
                    return False
                return resp.status_code == 200

            assert wait_until(answers, 120, 0.05), _podman("logs", name)
            up = time.monotonic() - started
            time.sleep(idle_seconds)  # idle: what the service holds with nothing to do
            pid = int(_podman("inspect", "--format", "{{.State.Pid}}", name).strip())
            rss = _rss_mb(pid)
            started = time.monotonic()
            _podman("stop", "--time", "10", name)
            stopped = time.monotonic() - started
        finally:
            subprocess.run(["podman", "rm", "--force", "--volumes", name], capture_output=True)
    return {
        "build_s": round(built, 1),
        "image_mb": round(size / 1e6, 1),
        "start_to_health_s": round(up, 2),
        "idle_rss_mb": rss,
        "sigterm_stop_s": round(stopped, 2),
        "targets": {"sigterm_stop_s": 1.0},
    }


def container_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    c = r.get("container")
    if not isinstance(c, dict) or "image_mb" not in c:
        return []
    return [
        (
            "Container: build from the base root (s) / image (MB) / start to /health (s)",
            f"{c['build_s']} / {c['image_mb']} / {c['start_to_health_s']}",
            "",
        ),
        (
            "Container: idle RSS inside (MB) / SIGTERM to stopped (s)",
            f"{c['idle_rss_mb']} / {c['sigterm_stop_s']}",
            "≤ 60; ≤ 1",
        ),
    ]
