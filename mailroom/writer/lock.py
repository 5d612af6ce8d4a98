"""One writer per account: an advisory lock beside the ledger.

Every process that writes the account (the service, for each pass; ``mailroom
triage``, ``undo``, ``reset`` and ``setup``, for their whole run) holds
``writer.lock`` in the state directory while it writes. The lock is the
kernel's (``flock``): it goes with the process, so one killed never leaves it
held. The holder writes who it is into the file, so the one waiting can say
what it waits for. Why a lock rather than handing commands to the service: a
command must work whether or not the service runs, and the ledger (the one
record of the account) is what the lock stands beside.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from mailroom.errors import BusyError

FILE_NAME = "writer.lock"
MAX_HOLDER_BYTES = 4096  # what the holder wrote; anything longer is not ours
POLL_S = 0.2  # how often a waiting writer tries again


class WriterBusy(BusyError):
    """Another process kept the account's writer lock past the wait allowed."""


@dataclass(frozen=True)
class Holder:
    """Who holds the lock, as the holder wrote it (best effort: for people)."""

    what: str  # "the service's pass", "mailroom reset" …
    pid: int | None = None
    since: float | None = None  # Unix seconds

    def __str__(self) -> str:
        text = self.what
        if self.pid is not None:
            text += f" (pid {self.pid})"
        if self.since is not None:
            text += " since " + time.strftime("%H:%M:%S %Z", time.localtime(self.since))
        return text


UNKNOWN = Holder("another Mailroom process")


class WriterLock:
    """The lock of one state directory; ``hold`` it around every write to the account."""

    def __init__(
        self,
        state_dir: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.path = state_dir / FILE_NAME
        self._clock = clock
        self._sleep = sleep
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self, what: str) -> Holder | None:
        """Take the lock if free (None), else say who holds it. Never blocks."""
        if self._fd is not None:
            return None  # held by us already: a pass inside a command's run
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd) if exc.errno in (errno.EWOULDBLOCK, errno.EACCES) else None
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            return holder or UNKNOWN
        self._fd = fd
        _write_holder(fd, Holder(what, os.getpid(), time.time()))
        return None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # nobody holds it: nothing to show
        os.close(fd)  # closing drops the flock

    @contextlib.asynccontextmanager
    async def hold(
        self,
        what: str,
        *,
        wait: float,
        waiting: Callable[[Holder | None], None] = lambda _: None,
        give_up: Callable[[], bool] = lambda: False,
    ) -> AsyncIterator[None]:
        """Hold the lock for the block, waiting at most ``wait`` seconds for it
        (:class:`WriterBusy` past that, or as soon as ``give_up()`` is true: a
        service stopping never waits for a command to finish). ``waiting``
        hears who holds it when the wait begins, and None once it ends."""
        if self._fd is not None:  # reentrant: already ours
            yield
            return
        deadline = self._clock() + wait
        said = False
        try:
            while (holder := self.try_acquire(what)) is not None:
                if not said:
                    waiting(holder)
                    said = True
                if give_up():
                    raise WriterBusy(f"{holder} is writing this account; stopped waiting for it")
                if self._clock() >= deadline:
                    raise WriterBusy(
                        f"{holder} is writing this account (lock {self.path}); "
                        f"gave up after {wait:g} s: try again once it is done"
                    )
                await self._sleep(POLL_S)
        finally:
            if said:
                waiting(None)
        try:
            yield
        finally:
            self.release()

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except PermissionError:
            # Another user's lock file (a command run as root beside a service
            # user, say): flock needs only a descriptor, not the right to write.
            return os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)


def _write_holder(fd: int, holder: Holder) -> None:
    text = json.dumps({"what": holder.what, "pid": holder.pid, "since": holder.since})
    with contextlib.suppress(OSError):  # read-only: the lock holds all the same
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)


def _read_holder(fd: int) -> Holder | None:
    try:
        raw = os.pread(fd, MAX_HOLDER_BYTES, 0)
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    what, pid, since = data.get("what"), data.get("pid"), data.get("since")
    if not isinstance(what, str) or not what or len(what) > 200:
        return None
    return Holder(
        what,
        pid if isinstance(pid, int) and 0 < pid < 2**31 else None,
        float(since) if isinstance(since, int | float) and 0 < since < 2**40 else None,
    )
