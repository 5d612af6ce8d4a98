"""Which senders a pass works on (pure): from the labelled emails the scan
found to each sender's category, with conflicts, the account's own mail and
emails without one sender set aside for the error label."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mailroom.account.categories import Categories, Category
from mailroom.account.mailboxes import MailboxMap
from mailroom.lists.listid import LIST_ID, list_id


@dataclass
class SenderWork:
    """A sender to triage into ``category``; ``emails`` are the labelled ones."""

    sender: str
    category: Category
    display_name: str
    emails: dict[str, frozenset[str]] = field(default_factory=dict)  # id -> mailbox ids
    whole_domain: bool = False  # labelled @WholeDomain too: decide for its domain
    rule: int | None = None  # the domain decision that triages it (ledger id)
    trigger: str | None = None  # recorded instead of the pass's ("sent": the user wrote to them)


@dataclass
class ListWork:
    """A mailing list to decide into ``category`` (``@WholeList`` beside a triage
    label); ``emails`` are the labelled ones."""

    list_id: str
    category: Category
    emails: dict[str, frozenset[str]] = field(default_factory=dict)  # id -> mailbox ids


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
    # list id -> its decision (@WholeList beside one triage label)
    lists: dict[str, ListWork] = field(default_factory=dict)
    # labelled @WholeList but no list (no usable List-Id), or not with exactly
    # one triage label, or two categories for one list: flagged, with why
    no_list: dict[str, str] = field(default_factory=dict)  # email id -> why


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
        if boxes.list_label and boxes.list_label in mailbox_ids:
            _place_list(plan, eid, email, mailbox_ids, labels, categories)
            continue
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
        _place(plan, address, found, cats[address], categories, names.get(address, ""), whole)
    return plan


def _place(
    plan: ScanPlan,
    address: str,
    found: dict[str, frozenset[str]],
    labels: set[str],
    categories: Categories,
    name: str,
    whole: set[str],
) -> None:
    """A sender's labelled emails: a conflict, a send-back, or work for the pass."""
    if len(labels) > 1:
        plan.conflicts[address] = sorted(found)
        return
    (category_name,) = labels
    if category_name == BACK:
        plan.back[address] = found
        return
    plan.senders[address] = SenderWork(
        sender=address,
        category=categories.by_name(category_name),
        display_name=name,
        emails=found,
        whole_domain=address in whole,
    )


# -- contact groups -----------------------------------------------------------


def _place_list(
    plan: ScanPlan,
    eid: str,
    email: Mapping[str, Any],
    mailbox_ids: frozenset[str],
    labels: set[str],
    categories: Categories,
) -> None:
    """An email labelled ``@WholeList``: its list's decision, or why there is none."""
    ident = list_id(email.get(LIST_ID))
    if ident is None:
        plan.no_list[eid] = "labelled @WholeList, but it is from no mailing list (no List-Id)"
        return
    if len(labels) != 1 or BACK in labels:
        plan.no_list[eid] = "labelled @WholeList with no one triage label beside it"
        return
    (name,) = labels
    work = plan.lists.setdefault(ident, ListWork(ident, categories.by_name(name)))
    if work.category.name != name:
        plan.no_list[eid] = f"list {ident} labelled for two categories at once"
        for other in work.emails:
            plan.no_list[other] = plan.no_list[eid]
        work.emails.clear()
        return
    work.emails[eid] = mailbox_ids
