"""The soak's second user: ``mailroom triage`` and ``mailroom undo`` from a shell
while the service runs (one writer per account: they wait for each other)."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping

from tests.soak.world import World

COMMAND_TIMEOUT = 120.0


class CliUser:
    def __init__(self, env: Mapping[str, str], world: World, rng: random.Random) -> None:
        self._env = dict(env)
        self._world = world
        self._rng = rng
        self._thread: threading.Thread | None = None
        self.runs: Counter[str] = Counter()  # "triage 0", "undo 1" …
        self.ended = 0.0  # monotonic: when the last command ended

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def act(self) -> None:
        """Start one command, unless one is still running (one shell)."""
        if self.running:
            return
        sender = self._rng.choice(self._world.senders)
        if self._rng.random() < 0.6:
            category = self._rng.choice([c.name for c in self._world.categories])
            argv = ["triage", sender, category, "--apply"]
        else:
            argv = ["undo", sender, "--apply"]
        self._thread = threading.Thread(target=self._run, args=(argv,), daemon=True)
        self._thread.start()

    def _run(self, argv: list[str]) -> None:
        try:
            self._command(argv)
        finally:
            self.ended = time.monotonic()

    def _command(self, argv: list[str]) -> None:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "mailroom", *argv],
                env=self._env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            self._world.violations.append(f"cli: {' '.join(argv)} took over {COMMAND_TIMEOUT} s")
            return
        self.runs[f"{argv[0]} {done.returncode}"] += 1
        if argv[0] == "triage" and done.returncode == 1:
            # Refused part-way: its decision stays open for a label to finish.
            self._world.cli_refused[(argv[1], argv[2])] += 1
        # 0 done (or nothing to do), 1 refused by a fault of the server; never
        # a traceback, never a settings error.
        if done.returncode not in (0, 1) or "Traceback" in done.stderr:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
            self._world.violations.append(
                f"cli: {' '.join(argv[:2])} exited {done.returncode}: {tail[0][:300]}"
            )

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(COMMAND_TIMEOUT + 5)
