"""The running service: start-up, the push supervisor over the triage pass,
/health and /metrics, and the signals that stop it.

Dependencies point inward: ``wiring`` connects to the account, this module
hands the triage pass (``Triage.run_pass``) to the push supervisor, under the
account's writer lock, and serves /health and /metrics from the same
telemetry the supervisor writes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import httpx

from mailroom import __version__
from mailroom.contacts.select import ContactsUnavailable
from mailroom.core.vocabulary import WATCHED_TYPES, Trigger
from mailroom.failures import classify, summarise
from mailroom.ledger.model import DecisionKind, Outcome
from mailroom.ledger.reading import Filter
from mailroom.ledger.sqlite_file import LedgerError
from mailroom.ledger.store import Ledger
from mailroom.net import api_client
from mailroom.observe.history import SENDERS_KEPT, TriagedEntry
from mailroom.observe.metrics import Metrics
from mailroom.observe.systemd import SystemdNotifier
from mailroom.observe.telemetry import Telemetry
from mailroom.push.backoff import Backoff
from mailroom.push.connection import STATES, transitions
from mailroom.push.outcome import PassSummary
from mailroom.push.policy import PushPolicy
from mailroom.push.stream import stream_client
from mailroom.push.supervisor import Supervisor
from mailroom.settings import Settings
from mailroom.startup import STARTUP_BACKOFF_CAP, start, wait_fed
from mailroom.triage.workflow import (
    AccountConflict,
)
from mailroom.web.access import public_host
from mailroom.web.app import build
from mailroom.web.context import WebContext, connect_pages
from mailroom.web.guard import default_public_url, origins
from mailroom.web.server import WebServer
from mailroom.wiring import Clients, make_clients
from mailroom.writer.lock import WriterLock

log = logging.getLogger(__name__)

EXIT_CONFIG = 2  # systemd: RestartPreventExitStatus=2


STREAM_TYPES = ",".join(WATCHED_TYPES)


def make_telemetry(
    settings: Settings, systemd: SystemdNotifier | None = None, policy: PushPolicy | None = None
) -> Telemetry:
    metrics = Metrics(STATES, transitions(), [c.name for c in settings.categories], __version__)
    policy = policy or policy_from(settings)
    telemetry = Telemetry(
        metrics,
        settings.poll_interval,
        pass_timeout=policy.pass_timeout,
        degraded_interval=min(settings.poll_interval, policy.degraded_poll_interval),
        systemd=systemd,
    )
    telemetry.diagram = (tuple(STATES), tuple(transitions()))
    return telemetry


def policy_from(settings: Settings) -> PushPolicy:
    return PushPolicy(poll_interval=settings.poll_interval, debounce=settings.debounce_seconds)


class App:
    """The whole service; ``run()`` returns the exit status."""

    def __init__(
        self,
        settings: Settings,
        *,
        policy: PushPolicy | None = None,
        systemd: SystemdNotifier | None = None,
        dry_run: bool = False,
    ) -> None:
        self.settings = settings
        self.dry_run = dry_run
        self.policy = policy or policy_from(settings)
        self.systemd = systemd or SystemdNotifier()
        self.telemetry = make_telemetry(settings, self.systemd, self.policy)
        self.telemetry.set_dry_run(dry_run)
        self.web = WebContext(
            telemetry=self.telemetry,
            access=settings.web,
            categories=list(settings.categories),
            listen_host=settings.http_host,
            trust_sent=settings.trust_sent,
            # The address people open the pages at is one this service answers to.
            allowed_hosts=(*settings.http_allowed_hosts, *public_host(settings.web)),
        )
        self.server = WebServer(build(self.web), settings.http_host, settings.http_port)
        self.supervisor: Supervisor | None = None
        self.clients: Clients | None = None

    async def run(self, stop: asyncio.Event) -> int:
        settings = self.settings
        try:
            await self.server.start()
        except OSError as exc:
            log.error(
                "cannot serve /health and /metrics",
                extra={
                    "fields": {
                        "address": f"{settings.http_host}:{settings.http_port}",
                        "error": exc.strerror or str(exc),
                    }
                },
            )
            return 1
        host, port = self.server.address
        base = f"http://{host}:{port}"
        web = self.web
        web.public_url = settings.web.public_url or default_public_url(settings.http_host, port)
        web.origins = origins(web.public_url, settings.http_host, port)
        # Ready once the settings are valid and /health answers; not after the
        # mail server does (a server down at boot must not get us killed).
        self.systemd.ready("starting: connecting to the mail server")
        log.info(
            "serving",
            extra={
                "fields": {
                    "health": base + "/health",
                    "metrics": base + "/metrics",
                    "pages": web.public_url if settings.web.enabled else "off",
                }
            },
        )
        ledger: Ledger | None = None
        try:
            if not self.dry_run:  # a dry run writes nothing, the ledger included
                try:
                    ledger = await self._open_ledger(stop)
                except LedgerError as exc:
                    log.error("cannot open the ledger", extra={"fields": {"error": str(exc)}})
                    self.systemd.status(f"stopped: {exc}")
                    return EXIT_CONFIG
                if ledger is None:
                    return 0  # asked to stop while waiting for it
                self._remember(ledger)
            return await self._run(stop, ledger)
        finally:
            if ledger is not None:
                ledger.close()
            await self.server.stop()

    async def _open_ledger(self, stop: asyncio.Event) -> Ledger | None:
        """Open the ledger, waiting out what passes by itself (another process's
        lock, a full disk being cleared) with /health saying why; raises
        LedgerError for what the user must fix (exit 2). None: asked to stop."""
        backoff = Backoff(base=self.policy.backoff_base, cap=STARTUP_BACKOFF_CAP, jitter=0.0)
        while not stop.is_set():
            try:
                ledger, opened = Ledger.open(self.settings.ledger_path)
            except LedgerError as exc:
                if not exc.passing:
                    raise
                delay = backoff.next_delay()
                why = f"the ledger cannot be opened, retrying in {delay:.0f} s: {exc}"
                self.telemetry.starting(why)
                self.systemd.status(f"starting: {why}")
                log.error("cannot open the ledger; retrying", extra={"fields": {"error": str(exc)}})
                await wait_fed(stop, delay, self.telemetry, self.systemd)
                continue
            if opened.moved_aside is not None:
                log.warning(
                    "the ledger was corrupt: moved aside, a new one started (the account is "
                    "unchanged; only the record of earlier decisions is in the old file)",
                    extra={"fields": {"moved_to": str(opened.moved_aside)}},
                )
            return ledger
        return None

    def _remember(self, ledger: Ledger) -> None:
        """The status page's last decisions come from the ledger: they survive a
        restart and show the command line's too (undos, domain rules)."""
        self.telemetry.history.source = lambda: recent_decisions(ledger)

    async def _run(self, stop: asyncio.Event, ledger: Ledger | None) -> int:
        settings = self.settings
        async with (
            api_client(settings.poll_interval) as http,
            stream_client() as stream_http,
        ):
            self.clients = clients = make_clients(
                settings, http, dry_run=self.dry_run, ledger=ledger
            )
            try:
                started = await start(
                    clients,
                    self.telemetry,
                    stop,
                    base_delay=self.policy.backoff_base,
                    systemd=self.systemd,
                )
            except (AccountConflict, ContactsUnavailable, LedgerError) as exc:
                log.error("cannot start", extra={"fields": {"error": str(exc)}})
                self.systemd.status(f"stopped: {exc}")
                return EXIT_CONFIG
            if not started:
                return 0
            connect_pages(self.web, clients, ledger, self.settings.ledger_path.parent)
            await self._supervise(clients, stream_http, stop)
        log.info("stopped")
        return 0

    async def _supervise(
        self, clients: Clients, stream_http: httpx.AsyncClient, stop: asyncio.Event
    ) -> None:
        jmap = clients.jmap
        policy = self.policy

        async def stream_url(refresh: bool) -> str | None:
            if refresh:  # push was unavailable: the session may have changed
                await jmap.discover()
            return jmap.session.stream_url(types=STREAM_TYPES, closeafter="no", ping=policy.ping)

        retention = self.settings.ledger_retention_days * 86400.0
        next_prune = [0.0]
        # One writer per account: a pass waits for a command writing it (the
        # log and /health say for whom), never longer than half its deadline.
        writer = WriterLock(self.settings.ledger_path.parent)
        wait = policy.pass_timeout / 2

        def waiting(holder: object) -> None:
            self.telemetry.waiting_for(None if holder is None else str(holder))
            if holder is not None:
                log.info(
                    "pass waits for another writer of the account",
                    extra={"fields": {"holder": str(holder)}},
                )

        async def run_pass(trigger: Trigger) -> PassSummary:
            ledger = clients.ledger
            if ledger is None:  # a dry run writes nothing: no writer to wait for
                return await self._pass(clients, trigger)
            # Stopping, a pass still waiting for the lock has written nothing:
            # it gives up at once rather than hold the shutdown for a command.
            async with writer.hold(
                "the service's pass", wait=wait, waiting=waiting, give_up=stop.is_set
            ):
                if time.monotonic() >= next_prune[0]:
                    # Email-level detail past its retention, once a day.
                    next_prune[0] = time.monotonic() + 86400.0
                    ledger.prune(time.time() - retention)
                return await self._pass(clients, trigger)

        self.supervisor = Supervisor(
            policy=policy,
            run_pass=run_pass,
            classify=classify,
            stream_url=stream_url,
            account_id=jmap.session.account_id,
            auth_headers=lambda: jmap.auth_headers,
            http=stream_http,
            telemetry=self.telemetry,
            systemd=self.systemd,
        )
        self.systemd.status("started: connecting push")
        log.info("started", extra={"fields": {"categories": len(self.settings.categories)}})
        await self.supervisor.run(stop)

    async def _pass(self, clients: Clients, trigger: Trigger) -> PassSummary:
        try:
            return summarise(await clients.triage.run_pass(trigger))
        finally:
            if self.web.screener is not None:
                self.web.screener.changed()  # what the pass did shows on the next view


async def run_until_signalled(settings: Settings, *, dry_run: bool = False) -> int:
    """Run until SIGTERM or SIGINT; a pass in flight is finished first."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await App(settings, dry_run=dry_run).run(stop)


def recent_decisions(ledger: Ledger) -> list[TriagedEntry]:
    """The ledger's latest finished decisions for the status page, newest first."""
    out = []
    for d in ledger.history(Filter(limit=SENDERS_KEPT * 2)):
        if d.outcome is not Outcome.DONE:
            continue
        i = d.intent
        if i.kind is DecisionKind.UNDO:
            category, note = i.category or "Screener", "undo"
        else:
            category = i.category or ""
            note = "whole domain" if i.subject.startswith("@") else ""
            note = "by domain rule" if i.rule is not None else note
        out.append(TriagedEntry(d.finished or d.started, i.subject, category, note))
    return out[:SENDERS_KEPT]
