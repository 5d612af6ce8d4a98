"""The account's own addresses, and where each was learned (pure).

Mail from the user is never a sender to triage. The server says who the user
is in its identities (``Identity/get``) and the session's username, but not
every server does: Cyrus 3.6 offers no identity with an address, and its
username has no domain. So the From addresses of the user's own recent Sent
mail count too (aliases included), and ``MAILROOM_OWN_ADDRESSES`` adds any
the account cannot show.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mailroom.account.mailboxes import resolve_mailboxes
from mailroom.jmap.client import JmapClient
from mailroom.jmap.errors import JmapAuthError, JmapError

log = logging.getLogger(__name__)

MAX_ADDRESS = 320

USERNAME = "the session's username"
IDENTITY = "an identity"
SENT = "your Sent mail"
SETTING = "MAILROOM_OWN_ADDRESSES"


@dataclass(frozen=True)
class OwnAddresses:
    """address -> where it was learned (one or more of the sources above)."""

    sources: Mapping[str, tuple[str, ...]]

    @property
    def all(self) -> frozenset[str]:
        return frozenset(self.sources)

    def lines(self) -> list[str]:
        """One line per address, for ``mailroom check``."""
        return [f"{a} (from {', '.join(w)})" for a, w in sorted(self.sources.items())]


def address(value: Any) -> str | None:
    """A plain address from a server or a setting, lower case (None: not one).

    A wildcard identity (``*@domain``) names a domain, not an address."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or "*" in text or len(text) > MAX_ADDRESS:
        return None
    if any(c.isspace() or not c.isprintable() for c in text):
        return None
    return text


def learn(
    username: str,
    identities: Iterable[Any],
    sent: Iterable[Mapping[str, Any]],
    configured: Iterable[str] = (),
) -> OwnAddresses:
    found: dict[str, list[str]] = {}

    def add(value: Any, source: str) -> None:
        got = address(value)
        if got is not None and source not in found.setdefault(got, []):
            found[got].append(source)

    add(username, USERNAME)
    for identity in identities:
        if isinstance(identity, Mapping):
            add(identity.get("email"), IDENTITY)
    for email in sent:
        senders = email.get("from")
        for entry in senders if isinstance(senders, list) else []:
            if isinstance(entry, Mapping):
                add(entry.get("email"), SENT)
    for value in configured:
        add(value, SETTING)
    return OwnAddresses({a: tuple(w) for a, w in found.items()})


async def read_own(
    jmap: JmapClient, configured: Iterable[str], sent: str | None = None
) -> OwnAddresses:
    """Read them from the account (one request; ``sent``: the Sent mailbox's id,
    None to find it by its role first). The username and the setting alone if
    the server cannot be read for them (logged)."""
    username = jmap.session.username
    try:
        if sent is None:  # before setup (mailroom check): the Sent mailbox by its role
            sent = resolve_mailboxes((await jmap.get_mailboxes())[0], ()).sent
        identities, sent_mail = await jmap.own_sources(sent or None)
    except JmapAuthError:
        raise
    except JmapError as exc:
        log.warning(
            "cannot read the account's identities and Sent mail; only its username "
            "and MAILROOM_OWN_ADDRESSES count as its own",
            extra={"fields": {"error": str(exc)}},
        )
        return learn(username, (), (), configured)
    return learn(username, identities, sent_mail, configured)
