"""How many senders waiting now the user has written to, for ``mailroom check``
and ``mailroom setup``: what MAILROOM_TRUST_SENT does (or would do) next."""

from __future__ import annotations

from mailroom.account.mailboxes import resolve_mailboxes
from mailroom.account.own import read_own
from mailroom.core.words import count
from mailroom.correspondents.screen import Correspondents
from mailroom.jmap.client import JmapClient
from mailroom.settings import Settings


async def survey(jmap: JmapClient, settings: Settings) -> str | None:
    """One line to report (None: no Screener or no Sent mailbox to look at)."""
    res = resolve_mailboxes((await jmap.get_mailboxes())[0], [settings.screener_mailbox])
    screener = res.found.get(settings.screener_mailbox)
    if not screener or not res.sent:
        return None
    own = await read_own(jmap, settings.own_addresses, res.sent)
    found = await Correspondents(jmap).written_to(screener, res.sent, "", skip=own.all)
    senders = count(len(found), "sender")
    if settings.trust_sent is not None:
        return (
            f"{senders} waiting in the Screener you have written to: "
            f"MAILROOM_TRUST_SENT={settings.trust_sent} files them on the service's next pass"
        )
    if not found:
        return "no sender waiting in the Screener is someone you have written to"
    return (
        f"{senders} waiting in the Screener you have written to: set MAILROOM_TRUST_SENT to a "
        f"category (Imbox, say) to file them, and later replies, by themselves"
    )
