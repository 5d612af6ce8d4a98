"""What the settings need from the account, and what it has: a pure review.

``mailroom check`` reports it, ``mailroom setup`` acts on it, ``mailroom run``
refuses to start on an incomplete account and names what is missing. Nothing
here does IO: it reads a ``Mailbox/get`` list and the names of the contact
groups found.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mailroom.account.categories import Categories

# Triage removes labels and re-files: none of these may serve as a label.
ROLE_MAILBOXES = frozenset({"inbox", "archive", "sent", "drafts", "trash", "junk"})
# Mailroom files mail into a destination and empties the Screener: never these
# (an Archive destination is fine).
NOT_A_DESTINATION = frozenset({"inbox", "sent", "drafts", "trash", "junk"})
NOT_THE_SCREENER = frozenset({"inbox", "archive", "sent", "drafts", "trash", "junk"})
SETUP_HINT = "run `mailroom setup --apply`"


class NeedKind(StrEnum):
    MAILBOX = "mailbox"
    GROUP = "contact group"


@dataclass(frozen=True)
class Need:
    kind: NeedKind
    name: str
    purpose: str  # "the Screener", "label for Feed", …
    present: bool
    # Triage runs without it (its feature is off until setup makes it): an
    # account set up by an older Mailroom keeps working after an upgrade.
    optional: bool = False

    def __str__(self) -> str:
        return f"{self.kind.value} {self.name!r} ({self.purpose})"


@dataclass(frozen=True)
class AccountReview:
    needs: tuple[Need, ...]
    conflicts: tuple[str, ...]  # one sentence each: a label that is a role mailbox
    has_inbox: bool

    @property
    def missing(self) -> tuple[Need, ...]:
        return tuple(n for n in self.needs if not n.present)

    @property
    def blocking(self) -> tuple[Need, ...]:
        """What triage cannot run without."""
        return tuple(n for n in self.missing if not n.optional)

    @property
    def ok(self) -> bool:
        return self.has_inbox and not self.conflicts and not self.missing


def review_account(
    *,
    categories: Categories,
    screener: str,
    error_label: str,
    mailboxes: Sequence[Mapping[str, Any]],
    extra_labels: Sequence[tuple[str, str]] = (),  # (name, purpose)
    groups: Iterable[str],
) -> AccountReview:
    top = {
        str(b.get("name")): b
        for b in mailboxes
        if isinstance(b.get("name"), str) and b.get("parentId") is None
    }
    nested = {str(b.get("name")) for b in mailboxes if isinstance(b.get("name"), str)}
    names = top.keys() | nested
    have_groups = set(groups)
    wanted: list[tuple[NeedKind, str, str]] = [(NeedKind.MAILBOX, screener, "the Screener")]
    optional = {name for name, _ in extra_labels}
    for c in categories:
        wanted.append((NeedKind.MAILBOX, c.label, f"label for {c.name}"))
    for c in categories:
        wanted.append((NeedKind.MAILBOX, c.destination, f"destination of {c.name}"))
    wanted.append((NeedKind.MAILBOX, error_label, "the error label"))
    wanted += [(NeedKind.MAILBOX, name, purpose) for name, purpose in extra_labels]
    for c in categories:
        wanted.append((NeedKind.GROUP, c.contact_group, f"contact group of {c.name}"))
    needs: list[Need] = []
    seen: set[tuple[NeedKind, str]] = set()
    for kind, name, purpose in wanted:
        if (kind, name) in seen:
            continue  # a destination or group shared by categories
        seen.add((kind, name))
        present = name in (names if kind is NeedKind.MAILBOX else have_groups)
        needs.append(Need(kind, name, purpose, present, optional=name in optional))
    conflicts = []
    for name in (*categories.labels, error_label, *(n for n, _ in extra_labels)):
        box = top.get(name)
        role = box.get("role") if box is not None else None
        if isinstance(role, str) and role in ROLE_MAILBOXES:
            conflicts.append(
                f"the label {name!r} is the account's {role} mailbox: choose another label "
                "name (MAILROOM_TRIAGE_CATEGORIES or MAILROOM_ERROR_LABEL)"
            )
    for c in categories:
        role = _role(top.get(c.destination))
        if role in NOT_A_DESTINATION:
            conflicts.append(
                f"the destination {c.destination!r} of {c.name} is the account's {role} "
                "mailbox: Mailroom never files mail there; choose another destination "
                "(MAILROOM_TRIAGE_CATEGORIES)"
            )
    role = _role(top.get(screener))
    if role in NOT_THE_SCREENER:
        conflicts.append(
            f"the Screener {screener!r} is the account's {role} mailbox: triage moves mail "
            "out of the Screener; choose another (MAILROOM_SCREENER_MAILBOX)"
        )
    has_inbox = any(b.get("role") == "inbox" for b in mailboxes) or "Inbox" in top
    return AccountReview(tuple(needs), tuple(conflicts), has_inbox)


def _role(box: Mapping[str, Any] | None) -> str | None:
    role = box.get("role") if box is not None else None
    return role if isinstance(role, str) else None


def missing_message(missing: Sequence[Need]) -> str:
    listed = ", ".join(str(n) for n in missing)
    return f"missing in the account: {listed}; {SETUP_HINT}"
