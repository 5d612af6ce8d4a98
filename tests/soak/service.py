"""The real service in its own process, with push timings shrunk for the soak.

Everything but the policy is what ``mailroom run`` does: settings from the
environment, logging, signals, exit status.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from mailroom.observe.logging import setup_logging
from mailroom.push.policy import PushPolicy
from mailroom.service import App
from mailroom.settings import load_settings

# Seconds where the real service has tens of seconds, so a few minutes of soak
# go through every state many times.
SOAK_POLICY = PushPolicy(
    poll_interval=5.0,
    debounce=0.5,
    ping=2,
    liveness_margin=1.0,
    backoff_base=0.1,
    backoff_cap=3.0,
    healthy_after=3.0,
    degrade_after=4.0,
    degraded_poll_interval=2.0,
    missed_push_grace=1.0,
    open_timeout=3.0,
    pass_timeout=8.0,
)


async def main() -> int:
    defect = os.environ.get("SOAK_BREAK")
    if defect:  # `make soak-selftest`: a deliberately broken build
        from tests.soak.broken import apply

        apply(defect)
    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await App(settings, policy=SOAK_POLICY).run(stop)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
