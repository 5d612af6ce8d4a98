"""Everything the pages work with, in one place the routes share.

The service fills in the account's parts (``screener``, ``decisions``,
``ledger``) once it has connected; until then the pages say it is connecting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import jinja2

from mailroom.account.categories import Category
from mailroom.ledger.store import Ledger
from mailroom.observe.telemetry import Telemetry
from mailroom.web.access import WebAccess
from mailroom.web.auth import LoginThrottle, ProxyTokens, Sessions
from mailroom.web.decisions import Decisions
from mailroom.web.screener import ScreenerReader
from mailroom.wiring import Clients

COOKIE = "mailroom_session"


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mailroom.web", "templates"),
        autoescape=True,  # every value from mail is text, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda ts: _utc(ts).strftime("%Y-%m-%d %H:%M UTC")
    env.filters["iso"] = lambda ts: _utc(ts).isoformat(timespec="seconds")
    return env


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass
class WebContext:
    telemetry: Telemetry
    access: WebAccess
    categories: Sequence[Category]
    listen_host: str
    trust_sent: str | None = None  # MAILROOM_TRUST_SENT: said beside those you wrote to
    allowed_hosts: tuple[str, ...] = ()
    clock: Callable[[], float] = time.time
    # Set once the server is bound (the default public URL names its port).
    public_url: str = ""
    origins: frozenset[str] = frozenset()
    # Set once the service has connected to the account.
    screener: ScreenerReader | None = None
    decisions: Decisions | None = None
    ledger: Ledger | None = None
    sessions: Sessions = field(default_factory=Sessions)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    proxy_tokens: ProxyTokens = field(default_factory=ProxyTokens)
    env: jinja2.Environment = field(default_factory=templates)

    @property
    def secure(self) -> bool:
        return self.public_url.startswith("https://")

    def category(self, wanted: str) -> Category | None:
        return next((c for c in self.categories if c.name == wanted), None)


def connect_pages(
    ctx: WebContext, clients: Clients, ledger: Ledger | None, state_dir: Path
) -> None:
    """The pages work on the account from here on (deciding needs a ledger: a
    dry run only shows). Push and passes tell the Screener view when to read again."""
    boxes = clients.triage.mailboxes
    labels = frozenset({*boxes.labels.values(), *boxes.extra_labels})
    reader = ScreenerReader(
        clients.jmap, boxes.screener, labels, clients.triage.own, sent_id=boxes.sent
    )
    ctx.telemetry.account_changed = reader.changed
    ctx.screener = reader
    ctx.ledger = ledger
    if ledger is not None:
        ctx.decisions = Decisions(clients, ledger, state_dir, reader.changed)
