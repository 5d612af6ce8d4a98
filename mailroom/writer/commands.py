"""A command that writes the account holds its writer lock for its whole run.

While the service runs beside it, its passes wait for the command (and say so
in the log and on /health); the command waits for a pass in flight, saying so
on standard error once, and gives up after :data:`COMMAND_WAIT` seconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TextIO

from mailroom.settings import Settings
from mailroom.writer.lock import Holder, WriterLock

COMMAND_WAIT = 600.0  # a pass takes seconds; another command may take minutes


@contextlib.asynccontextmanager
async def writing(settings: Settings, command: str, err: TextIO) -> AsyncIterator[None]:
    """Hold the account's writer lock (raises WriterBusy past the wait)."""

    def waiting(holder: Holder | None) -> None:
        if holder is not None:
            print(
                f"mailroom {command}: waiting for {holder} to finish writing the account",
                file=err,
                flush=True,
            )

    lock = WriterLock(settings.ledger_path.parent)
    async with lock.hold(f"mailroom {command}", wait=COMMAND_WAIT, waiting=waiting):
        yield
