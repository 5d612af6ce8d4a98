"""Where a triaged sender's contact and mail go (pure): the groups to join and
leave, each email's target mailboxes (never zero), the patches that move them
and the one that takes the labels off last."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mailroom.account.categories import Categories, Category
from mailroom.account.mailboxes import MailboxMap


@dataclass(frozen=True)
class GroupPlan:
    add: tuple[str, ...]
    remove: tuple[str, ...]


def plan_groups(current: Iterable[str], category: Category, categories: Categories) -> GroupPlan:
    """Groups to join (the chain) and to leave (managed groups outside the chain).

    Joins come first so a contact is never briefly in no group at all and
    Fastmail's rules keep routing its mail during a re-triage.
    """
    chain = [c.contact_group for c in reversed(categories.chain(category))]
    have = set(current)
    managed = set(categories.contact_groups)
    return GroupPlan(
        add=tuple(g for g in chain if g not in have),
        remove=tuple(sorted(g for g in have & managed if g not in chain)),
    )


# -- re-filing ----------------------------------------------------------------


def target_mailboxes(
    current: frozenset[str], category: Category, categories: Categories, boxes: MailboxMap
) -> frozenset[str]:
    """Where an email of a sender triaged into ``category`` belongs.

    Leaving a category that keeps mail in the Inbox (Imbox, Person) for one
    that does not takes its mail out of the Inbox too, as HEY does; mail kept
    in the Inbox for another reason (in no old destination) stays there.
    """
    chain = categories.chain(category)
    chain_dest = {boxes.destinations[c.destination] for c in chain}
    others = [c for c in categories if c.destination in boxes.destinations and c not in chain]
    other_dest = {boxes.destinations[c.destination] for c in others} - chain_dest
    out = (current - {boxes.screener} - other_dest) | chain_dest
    if category.add_to_inbox and boxes.screener in current:
        out |= {boxes.inbox}
    left_inbox_category = any(
        c.add_to_inbox and boxes.destinations[c.destination] in current - chain_dest for c in others
    )
    if left_inbox_category and not category.add_to_inbox:
        out -= {boxes.inbox}
    return frozenset(out)


def patch_for(current: frozenset[str], target: frozenset[str]) -> dict[str, Any]:
    """A JMAP patch turning ``current`` mailboxes into ``target`` ({} if equal)."""
    if not target:
        raise ValueError("refusing to leave an email in no mailbox")
    patch: dict[str, Any] = {f"mailboxIds/{m}": True for m in sorted(target - current)}
    patch.update({f"mailboxIds/{m}": None for m in sorted(current - target)})
    return patch


def patched(current: frozenset[str], patch: Mapping[str, Any]) -> frozenset[str]:
    """The mailboxes ``patch_for``'s patch leaves an email in (its inverse)."""
    out = set(current)
    for key, value in patch.items():
        mailbox = key.removeprefix("mailboxIds/")
        if value:
            out.add(mailbox)
        else:
            out.discard(mailbox)
    return frozenset(out)


def plan_refile(
    emails: Mapping[str, frozenset[str]],
    category: Category,
    categories: Categories,
    boxes: MailboxMap,
) -> dict[str, dict[str, Any]]:
    """Patches re-filing a sender's mail; Trash, Junk, Sent and Drafts are left alone."""
    out = {}
    for eid, current in emails.items():
        if current & boxes.excluded:
            continue
        patch = patch_for(current, target_mailboxes(current, category, categories, boxes))
        if patch:
            out[eid] = patch
    return out


def plan_label_removal(
    emails: Mapping[str, frozenset[str]],
    category: Category,
    categories: Categories,
    boxes: MailboxMap,
) -> dict[str, dict[str, Any]]:
    """Patches taking the triage label off the labelled emails, written last.

    ``emails`` are the mailboxes each email has after re-filing. Should an
    email hold nothing but its label, it keeps the category's destination.
    """
    label = boxes.labels[category.name]
    out = {}
    for eid, current in emails.items():
        if label not in current:
            continue
        # The whole-domain label goes with the triage label it modified.
        remaining = current - {label, boxes.domain_label}
        if not remaining:
            remaining = frozenset({boxes.destinations[category.destination]})
        out[eid] = patch_for(current, remaining)
    return out
