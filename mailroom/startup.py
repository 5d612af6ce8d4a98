"""Start-up: discover the servers and resolve the account, retrying what a
retry can fix (a server down at boot, credentials refused, a ledger locked for
a moment) while the watchdog stays fed; failing at once on what only the user
can fix (the account, the contacts backend, another account's ledger)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from mailroom.contacts.select import ContactsUnavailable
from mailroom.core import redact
from mailroom.failures import REMOTE_ERRORS, auth_failure
from mailroom.jmap.errors import JmapError
from mailroom.ledger.binding import LedgerAccountError
from mailroom.ledger.sqlite_file import LedgerError
from mailroom.observe.systemd import SystemdNotifier
from mailroom.observe.telemetry import Telemetry
from mailroom.push.backoff import Backoff
from mailroom.triage.workflow import AccountConflict
from mailroom.wiring import Clients

log = logging.getLogger(__name__)

AUTH_RETRY_SECONDS = 300.0  # rejected credentials: retry slowly, never hammer


STARTUP_BACKOFF_CAP = 60.0


async def start(
    clients: Clients,
    telemetry: Telemetry,
    stop: asyncio.Event,
    *,
    base_delay: float = 1.0,
    systemd: SystemdNotifier | None = None,
) -> bool:
    """Discover the servers and resolve the account; retry remote failures.

    A server down at boot is not a reason to be killed: systemd already has
    READY=1, the watchdog stays fed and /livez passes while the retries go
    on, and /health and STATUS= say why triage has not started. Returns False
    if asked to stop before start-up succeeded.
    """
    systemd = systemd or SystemdNotifier({})
    backoff = Backoff(base=base_delay, cap=STARTUP_BACKOFF_CAP, jitter=0.0)
    while not stop.is_set():
        try:
            await clients.connect()
            await clients.triage.setup()
            telemetry.starting(None)
            return True
        except (AccountConflict, ContactsUnavailable, LedgerAccountError):
            raise  # the settings or the account must change: retrying cannot help
        except LedgerError as exc:  # binding the ledger to the account
            if not exc.passing:
                raise
            delay = backoff.next_delay()
            why = f"the ledger cannot be written, retrying in {delay:.0f} s: {exc}"
            telemetry.starting(why)
            systemd.status(f"starting: {why}")
            log.error("start-up failed; retrying", extra={"fields": {"error": str(exc)}})
            await wait_fed(stop, delay, telemetry, systemd)
        except REMOTE_ERRORS as exc:
            auth = auth_failure(exc)
            if auth is not None:
                telemetry.pass_finished("startup", 0.0, error=str(exc), auth_rejected=auth)
            delay = AUTH_RETRY_SECONDS if auth else backoff.next_delay()
            what = auth or ("JMAP" if isinstance(exc, JmapError) else "contacts server")
            why = f"{what} {'rejected the credentials' if auth else 'unreachable'}"
            telemetry.starting(f"{why}, retrying in {delay:.0f} s ({redact.scrub(str(exc))})")
            systemd.status(f"starting: {why}, retrying in {delay:.0f} s")
            log.error(
                "start-up failed; retrying",
                extra={"fields": {"error": str(exc), "retry_in": delay}},
            )
            await wait_fed(stop, delay, telemetry, systemd)
    return False


async def wait_fed(
    stop: asyncio.Event, delay: float, telemetry: Telemetry, systemd: SystemdNotifier
) -> None:
    """Wait ``delay`` (or until stopped), feeding the watchdog and /livez meanwhile."""
    loop = asyncio.get_running_loop()
    until = loop.time() + delay
    tick = systemd.watchdog_interval or delay
    while not stop.is_set() and (left := until - loop.time()) > 0:
        telemetry.heartbeat()
        systemd.watchdog()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=min(left, tick))
    telemetry.heartbeat()
