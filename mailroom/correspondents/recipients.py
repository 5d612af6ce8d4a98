"""Who the user has written to, from their Sent mail (pure).

JMAP's ``to``/``cc``/``bcc`` filters match text, not addresses (``ann@x``
matches ``joann@x``), so the server narrows and the recipients read back
decide, exactly and case-insensitively.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mailroom.core.chunks import MAX_OR_CONDITIONS, chunked
from mailroom.jmap.wire import any_of

PER_FILTER = MAX_OR_CONDITIONS // 3  # senders in one Sent query's OR (3 conditions each)
RECIPIENT_FIELDS = ("to", "cc", "bcc")


def sent_filters(sent_id: str, senders: Sequence[str]) -> list[Mapping[str, Any]]:
    """Filters finding Sent mail addressed to any of ``senders``, a few at a time."""
    return [
        {
            "operator": "AND",
            "conditions": [
                {"inMailbox": sent_id},
                any_of([{field: s} for s in chunk for field in RECIPIENT_FIELDS]),
            ],
        }
        for chunk in chunked(list(senders), PER_FILTER)
    ]


def recipients(email: Mapping[str, Any]) -> set[str]:
    """Every To, Cc and Bcc address of an email, lower case."""
    out: set[str] = set()
    for field in RECIPIENT_FIELDS:
        entries = email.get(field)
        for entry in entries if isinstance(entries, list) else []:
            address = entry.get("email") if isinstance(entry, Mapping) else None
            if isinstance(address, str) and "@" in address and len(address) <= 320:
                out.add(address.strip().lower())
    return out


def written_to(emails: Iterable[Mapping[str, Any]], senders: Iterable[str]) -> set[str]:
    """Those of ``senders`` some of these (Sent) emails were addressed to."""
    wanted = set(senders)
    found: set[str] = set()
    for email in emails:
        found |= recipients(email) & wanted
    return found
