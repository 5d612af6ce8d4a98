"""Pure triage decisions: from what the server holds to what to write.

Nothing here does IO, so every rule of the Screener workflow (conflicts,
re-triage, re-filing, "never zero mailboxes") is tested with plain data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mailroom.triage.categories import Categories, Category

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
    # Optional labels the account lacks (set up by an older Mailroom), each with
    # the feature it turns on: that feature is off, everything else triages; a
    # note, never a failure.
    off: frozenset[str] = frozenset()

    @property
    def extra_labels(self) -> tuple[str, ...]:
        return tuple(m for m in (self.back_label, self.domain_label) if m)

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


def resolve_mailboxes(
    mailboxes: Sequence[Mapping[str, Any]], names: Iterable[str]
) -> MailboxResolution:
    """Find mailboxes by name (a top-level one wins over a nested one) and by role."""
    by_name: dict[str, tuple[bool, str]] = {}
    by_id: dict[str, str] = {}
    inbox = None
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
    )


# -- scanning the label mailboxes ------------------------------------------


@dataclass
class SenderWork:
    """A sender to triage into ``category``; ``emails`` are the labelled ones."""

    sender: str
    category: Category
    display_name: str
    emails: dict[str, frozenset[str]] = field(default_factory=dict)  # id -> mailbox ids
    whole_domain: bool = False  # labelled @WholeDomain too: decide for its domain
    rule: int | None = None  # the domain decision that triages it (ledger id)


@dataclass
class ScanPlan:
    senders: dict[str, SenderWork] = field(default_factory=dict)
    # sender -> labelled email ids that get the error label (conflicting labels)
    conflicts: dict[str, list[str]] = field(default_factory=dict)
    # labelled emails without a usable sender address: flagged, never guessed
    unreadable: list[str] = field(default_factory=list)
    # labelled emails with several From addresses: flagged, never guessed
    several_from: list[str] = field(default_factory=list)
    # the account's own address -> its labelled emails: flagged, never triaged
    own: dict[str, list[str]] = field(default_factory=dict)
    skipped: int = 0  # labelled emails already carrying the error label
    # sender -> its emails labelled back-to-Screener (id -> mailbox ids): undone
    back: dict[str, dict[str, frozenset[str]]] = field(default_factory=dict)


def from_addresses(email: Mapping[str, Any]) -> set[str]:
    """Every distinct From address of an email, lower case."""
    from_ = email.get("from")
    if not isinstance(from_, list):
        return set()
    out = set()
    for entry in from_:
        address = entry.get("email") if isinstance(entry, dict) else None
        if isinstance(address, str) and address.strip():
            out.add(address.strip().lower())
    return out


def sender_of(email: Mapping[str, Any]) -> tuple[str, str] | None:
    """(lowercased address, display name) of the first From address, or None."""
    from_ = email.get("from")
    if not isinstance(from_, list) or not from_ or not isinstance(from_[0], dict):
        return None
    address = from_[0].get("email")
    if not isinstance(address, str) or "@" not in address.strip():
        return None
    name = from_[0].get("name")
    return address.strip().lower(), name.strip() if isinstance(name, str) else ""


def mailbox_ids_of(email: Mapping[str, Any]) -> frozenset[str]:
    boxes = email.get("mailboxIds")
    if not isinstance(boxes, dict):
        return frozenset()
    return frozenset(k for k, v in boxes.items() if v)


BACK = "\0back to the Screener"  # the back-to-Screener label, among category names


def plan_scan(
    emails: Iterable[Mapping[str, Any]],
    boxes: MailboxMap,
    categories: Categories,
    own: frozenset[str] = frozenset(),
) -> ScanPlan:
    """Group labelled emails by sender; find conflicts and what cannot be triaged.

    ``own`` are the account's own addresses: mail from the user is never a
    sender to triage (their own address in a contact group, their Sent folder
    re-filed).
    """
    by_label = boxes.label_category(categories)
    plan = ScanPlan()
    seen: dict[str, dict[str, frozenset[str]]] = {}
    cats: dict[str, set[str]] = {}
    whole: set[str] = set()  # senders with an email labelled @WholeDomain
    names: dict[str, str] = {}
    for email in emails:
        eid = email.get("id")
        if not isinstance(eid, str):
            continue
        mailbox_ids = mailbox_ids_of(email)
        if boxes.error_label in mailbox_ids:
            plan.skipped += 1
            continue
        labels = {by_label[m].name for m in mailbox_ids if m in by_label}
        if boxes.back_label and boxes.back_label in mailbox_ids:
            labels.add(BACK)  # conflicts with any triage label like another category
        if not labels:
            continue  # label removed since the query ran
        who = sender_of(email)
        if who is None:
            plan.unreadable.append(eid)
            continue
        if len(from_addresses(email)) > 1:
            plan.several_from.append(eid)
            continue
        address, name = who
        if address in own:
            plan.own.setdefault(address, []).append(eid)
            continue
        seen.setdefault(address, {})[eid] = mailbox_ids
        if boxes.domain_label and boxes.domain_label in mailbox_ids:
            whole.add(address)
        cats.setdefault(address, set()).update(labels)
        if name and not names.get(address):
            names[address] = name
    for address, found in seen.items():
        if len(cats[address]) > 1:
            plan.conflicts[address] = sorted(found)
            continue
        (category_name,) = cats[address]
        if category_name == BACK:
            plan.back[address] = found
            continue
        plan.senders[address] = SenderWork(
            sender=address,
            category=categories.by_name(category_name),
            display_name=names.get(address, ""),
            emails=found,
            whole_domain=address in whole,
        )
    return plan


# -- contact groups -----------------------------------------------------------


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
