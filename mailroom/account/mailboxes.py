"""The mailboxes the settings name, found in the account (pure).

A pass works with mailbox ids; they are resolved from names once, and again
whenever the account shows that one was renamed, deleted or recreated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mailroom.account.categories import Categories, Category
from mailroom.account.config import TriageConfig
from mailroom.errors import AccountError

# Never re-filed: what the user threw away, and the user's own mail.
EXCLUDED_ROLES = frozenset({"trash", "junk", "sent", "drafts"})
MAX_NAME = 255  # characters of a mailbox name kept for display


@dataclass(frozen=True)
class MailboxMap:
    """Mailbox ids Mailroom works with, resolved from names and roles."""

    inbox: str
    screener: str
    error_label: str
    labels: Mapping[str, str]  # category name -> label mailbox id
    destinations: Mapping[str, str]  # destination mailbox name -> id
    excluded: frozenset[str]  # Trash, Junk, Sent and Drafts: never re-filed
    # Names the settings need that the account lost while running (the user
    # deleted or renamed them): their categories fail until setup makes them.
    missing: frozenset[str] = frozenset()
    names: Mapping[str, str] = field(default_factory=dict)  # every mailbox: id -> name
    back_label: str = ""  # @ToScreener: the sender goes back to the Screener ("" if none)
    domain_label: str = ""  # @WholeDomain: the triage label decides for the domain
    list_label: str = ""  # @WholeList: the triage label decides for the email's list
    # Optional labels the account lacks (set up by an older Mailroom), each with
    # the feature it turns on: that feature is off, everything else triages; a
    # note, never a failure.
    off: frozenset[str] = frozenset()
    sent: str = ""  # the mailbox with role "sent" ("" if none): whose From is the user's

    @property
    def extra_labels(self) -> tuple[str, ...]:
        return tuple(m for m in (self.back_label, self.domain_label, self.list_label) if m)

    def label_category(self, categories: Categories) -> dict[str, Category]:
        """label mailbox id -> category"""
        return {self.labels[c.name]: c for c in categories if c.name in self.labels}


@dataclass(frozen=True)
class MailboxResolution:
    found: Mapping[str, str]  # name -> id for every name asked for
    missing: tuple[str, ...]  # names with no mailbox
    inbox: str | None
    excluded: frozenset[str]
    names: Mapping[str, str] = field(default_factory=dict)  # every mailbox: id -> name
    sent: str = ""  # role "sent"


def resolve_mailboxes(
    mailboxes: Sequence[Mapping[str, Any]], names: Iterable[str]
) -> MailboxResolution:
    """Find mailboxes by name (a top-level one wins over a nested one) and by role."""
    by_name: dict[str, tuple[bool, str]] = {}
    by_id: dict[str, str] = {}
    inbox = None
    sent = ""
    excluded = set()
    for box in mailboxes:
        mid, name, role = box.get("id"), box.get("name"), box.get("role")
        if not isinstance(mid, str) or not isinstance(name, str):
            continue
        by_id[mid] = name[:MAX_NAME]
        nested = box.get("parentId") is not None
        if name not in by_name or (by_name[name][0] and not nested):
            by_name[name] = (nested, mid)
        if role == "inbox":
            inbox = mid
        if role == "sent" and not sent:
            sent = mid
        if role in EXCLUDED_ROLES:
            excluded.add(mid)
    wanted = list(dict.fromkeys(names))
    found = {n: by_name[n][1] for n in wanted if n in by_name}
    if inbox is None and "Inbox" in by_name:
        inbox = by_name["Inbox"][1]
    return MailboxResolution(
        found=found,
        missing=tuple(n for n in wanted if n not in found),
        inbox=inbox,
        excluded=frozenset(excluded),
        names=by_id,
        sent=sent,
    )


# -- scanning the label mailboxes ------------------------------------------


class SetupError(AccountError):
    """The account is not set up the way Mailroom needs (e.g. no Screener)."""


def names(config: TriageConfig) -> list[str]:
    cats = config.categories
    return [
        config.screener_mailbox,
        config.error_label,
        config.back_label,
        config.domain_label,
        config.list_label,
        *cats.labels,
        *cats.destinations,
    ]


def map_mailboxes(config: TriageConfig, mailboxes: Sequence[Mapping[str, Any]]) -> MailboxMap:
    """The ids of every mailbox the settings name; SetupError without a Screener or Inbox."""
    res = resolve_mailboxes(mailboxes, names(config))
    if config.screener_mailbox in res.missing:
        raise SetupError(
            f"no mailbox named {config.screener_mailbox!r} (the Screener): create it, and a "
            "rule that files mail from unknown senders there"
        )
    if res.inbox is None:
        raise SetupError("the account has no Inbox (no mailbox with role 'inbox')")
    found = res.found
    features = {
        config.back_label: "sending a sender back to the Screener with a label",
        config.domain_label: "deciding for a whole domain with a label",
        config.list_label: "deciding for a whole mailing list with a label",
    }
    optional = set(features) - {""}
    return MailboxMap(
        inbox=res.inbox,
        screener=found[config.screener_mailbox],
        error_label=found.get(config.error_label, ""),
        labels={c.name: found[c.label] for c in config.categories if c.label in found},
        destinations={d: found[d] for d in config.categories.destinations if d in found},
        excluded=res.excluded,
        missing=frozenset(res.missing) - optional,
        off=frozenset(f"label {n!r} ({features[n]})" for n in res.missing if n in optional),
        names=res.names,
        back_label=found.get(config.back_label, ""),
        domain_label=found.get(config.domain_label, ""),
        list_label=found.get(config.list_label, ""),
        sent=res.sent,
    )


def still_valid(
    config: TriageConfig, boxes: MailboxMap, mailboxes: Sequence[Mapping[str, Any]]
) -> bool:
    """Whether every name still resolves to the id ``boxes`` holds for it."""
    res = resolve_mailboxes(mailboxes, names(config))
    expected = {
        config.screener_mailbox: boxes.screener,
        config.error_label: boxes.error_label,
        config.back_label: boxes.back_label,
        config.domain_label: boxes.domain_label,
        config.list_label: boxes.list_label,
        **{c.label: boxes.labels.get(c.name, "") for c in config.categories},
        **{d: boxes.destinations.get(d, "") for d in config.categories.destinations},
    }
    return all(res.found.get(n, "") == i for n, i in expected.items())
