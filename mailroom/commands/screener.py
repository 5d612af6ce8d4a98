"""``mailroom screener``: who is waiting in the Screener, read from the account.

Each sender with mail there: their display name, how many emails, the newest
subject and date, the oldest date; newest first. The review a person wants
before deciding. Reads only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, TextIO

from mailroom.account.mailboxes import resolve_mailboxes
from mailroom.core.words import count
from mailroom.jmap.client import JmapClient
from mailroom.jmap.errors import JmapError
from mailroom.net import api_client
from mailroom.settings import Settings
from mailroom.triage.scan import sender_of

EXIT_ERROR, EXIT_CONFIG = 1, 2
MAX_SUBJECT = 200  # characters shown
PROPERTIES = ["id", "from", "subject", "receivedAt"]


@dataclass(frozen=True)
class Waiting:
    sender: str
    name: str
    emails: int
    newest_subject: str
    newest: str  # ISO 8601 UTC, "" when the server gave no usable date
    oldest: str


def _date(value: Any) -> str:
    """A JMAP UTCDate, normalised; "" for anything else (a server may send nonsense)."""
    if not isinstance(value, str) or len(value) > 40:
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if moment.tzinfo is None:
        return ""
    return moment.astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")


def waiting(emails: Iterable[Mapping[str, Any]]) -> list[Waiting]:
    """Senders with mail in the Screener, the most recent first (pure)."""
    by_sender: dict[str, list[tuple[str, str, str]]] = {}
    for email in emails:
        who = sender_of(email)
        if who is None:
            continue
        subject = email.get("subject")
        subject = subject[:MAX_SUBJECT] if isinstance(subject, str) else ""
        by_sender.setdefault(who[0], []).append((_date(email.get("receivedAt")), subject, who[1]))
    out = []
    for sender, mail in by_sender.items():
        dated = sorted((m for m in mail if m[0]), key=lambda m: _utc(m[0]))
        newest = dated[-1] if dated else mail[-1]
        name = next((m[2] for m in reversed(dated or mail) if m[2]), "")
        out.append(
            Waiting(
                sender=sender,
                name=name,
                emails=len(mail),
                newest_subject=newest[1],
                newest=newest[0],
                oldest=dated[0][0] if dated else "",
            )
        )
    out.sort(key=lambda w: (_utc(w.newest) if w.newest else 0.0, w.sender), reverse=True)
    return out


def _utc(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z").timestamp()


def render(senders: list[Waiting]) -> str:
    if not senders:
        return "nobody is waiting in the Screener\n"
    lines = []
    for w in senders:
        who = f"{w.name} <{w.sender}>" if w.name else w.sender
        # Local time, with its offset from UTC: a date means nothing without it.
        when = f"{w.newest[:16].replace('T', ' ')} {w.newest[19:]}" if w.newest else "date unknown"
        since = f", first {w.oldest[:10]}" if w.oldest and w.emails > 1 else ""
        lines.append(f"{when}  {who}  {count(w.emails, 'email')}{since}  “{w.newest_subject}”")
    return "\n".join(lines) + "\n"


async def run_screener(settings: Settings, out: TextIO, err: TextIO, *, as_json: bool) -> int:
    async with api_client(settings.poll_interval) as http:
        jmap = JmapClient(http, settings.jmap_session_url, settings.jmap_token)
        try:
            await jmap.discover()
            mailboxes, _ = await jmap.get_mailboxes()
            found = resolve_mailboxes(mailboxes, [settings.screener_mailbox]).found
            screener = found.get(settings.screener_mailbox)
            if screener is None:
                print(
                    f"mailroom screener: no mailbox named {settings.screener_mailbox!r} "
                    "(MAILROOM_SCREENER_MAILBOX); `mailroom setup` says how to make it",
                    file=err,
                )
                return EXIT_CONFIG
            emails = await jmap.query_emails({"inMailbox": screener}, PROPERTIES, per_request=4)
        except JmapError as exc:
            print(f"mailroom screener: {exc}", file=err)
            return EXIT_ERROR
    senders = waiting(emails)
    if as_json:
        print(json.dumps([asdict(w) for w in senders], indent=2, ensure_ascii=False), file=out)
    else:
        print(render(senders), file=out, end="")
    return 0
