"""Runs the whole service in-process against a stand-in, for fault scenarios.

Policies are shrunk (backoff in tens of milliseconds, pings every second) so
scenarios take seconds; every wait is for an outcome, with a generous deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from mailroom.push.policy import PushPolicy
from mailroom.service import App
from mailroom.settings import load_settings
from tests.faults import FaultySandbox

FAST = PushPolicy(
    poll_interval=60.0,
    debounce=0.2,
    ping=1,
    liveness_margin=0.5,
    backoff_base=0.05,
    backoff_cap=0.4,
    healthy_after=1.0,
    degrade_after=1.0,
    degraded_poll_interval=0.5,
    missed_push_grace=0.5,
    open_timeout=1.0,
)


@dataclass
class Running:
    sandbox: FaultySandbox
    app: App
    http: httpx.AsyncClient

    @property
    def path(self) -> list[str]:
        return list(self.app.telemetry.path)

    @property
    def state(self) -> str:
        return self.path[-1]

    async def until(self, predicate: Callable[[], bool], within: float = 15.0) -> None:
        """Wait for an outcome (checked every 20 ms), failing after ``within`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError(f"timed out; path={self.path}")
            await asyncio.sleep(0.02)

    async def health(self) -> tuple[int, dict[str, Any]]:
        host, port = self.app.server.address
        resp = await self.http.get(f"http://{host}:{port}/health")
        assert resp.headers["content-type"] == "application/health+json"
        return resp.status_code, resp.json()

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        host, port = self.app.server.address
        resp = await self.http.get(f"http://{host}:{port}/metrics")
        out = {}
        for family in text_string_to_metric_families(resp.text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    async def metric(self, name: str, **labels: str) -> float:
        return (await self.metrics()).get((name, tuple(sorted(labels.items()))), 0.0)

    def polls(self, trigger: str, outcome: str = "success") -> float:
        value = self.app.telemetry.metrics.polls.labels(trigger, outcome)._value.get()
        return float(value)

    def label(self, sender: str, label: str = "@ToFeed", emails: int = 1) -> list[str]:
        ids = [self.sandbox.mail.deliver(sender) for _ in range(emails)]
        self.sandbox.mail.set_mailboxes(ids[0], {"Screener", label})
        return ids

    def triaged(self, ids: list[str], destination: str = "Feed") -> bool:
        return all(self.sandbox.mail.mailbox_names(i) == {destination} for i in ids)


@contextlib.asynccontextmanager
async def running(
    sandbox: FaultySandbox,
    policy: PushPolicy = FAST,
    *,
    wait_connected: bool = True,
    env: dict[str, str] | None = None,
    dry_run: bool = False,
) -> AsyncIterator[Running]:
    sandbox.mail.ensure_mailbox("Screener")
    settings = load_settings(
        {
            **sandbox.env(),
            "MAILROOM_POLL_INTERVAL": f"{policy.poll_interval:g}",
            "MAILROOM_DEBOUNCE_SECONDS": f"{policy.debounce:g}",
            "MAILROOM_HTTP_PORT": "0",
            **(env or {}),
        }
    )
    sandbox.prepare(settings.categories)  # as `mailroom setup --apply` leaves it
    app = App(settings, policy=policy, dry_run=dry_run)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    async with httpx.AsyncClient(timeout=10.0) as http:
        run = Running(sandbox, app, http)
        try:
            await run.until(lambda: app.telemetry.record.last_poll_success_at is not None)
            if wait_connected:
                await run.until(lambda: run.state == "connected")
            yield run
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 10) == 0
