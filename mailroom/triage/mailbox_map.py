"""The mailboxes the settings name, found in the account (pure).

A pass works with mailbox ids; they are resolved from names once, and again
whenever the account shows that one was renamed, deleted or recreated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mailroom.triage.planning import MailboxMap, resolve_mailboxes
from mailroom.triage.provisioning import TriageConfig


class SetupError(Exception):
    """The account is not set up the way Mailroom needs (e.g. no Screener)."""


def names(config: TriageConfig) -> list[str]:
    cats = config.categories
    return [
        config.screener_mailbox,
        config.error_label,
        config.back_label,
        config.domain_label,
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
        **{c.label: boxes.labels.get(c.name, "") for c in config.categories},
        **{d: boxes.destinations.get(d, "") for d in config.categories.destinations},
    }
    return all(res.found.get(n, "") == i for n, i in expected.items())
