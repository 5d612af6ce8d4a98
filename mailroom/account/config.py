"""What the settings tell the pass about the account: the categories, the
Screener, and the names of the labels Mailroom acts on."""

from __future__ import annotations

from dataclasses import dataclass

from mailroom.account.categories import Categories


@dataclass(frozen=True)
class TriageConfig:
    categories: Categories
    screener_mailbox: str
    error_label: str
    back_label: str = "@ToScreener"  # a sender back to the Screener
    domain_label: str = "@WholeDomain"  # the triage label decides for the domain
    list_label: str = "@WholeList"  # the triage label decides for the email's list
    trust_sent: str | None = None  # MAILROOM_TRUST_SENT: the category for people you wrote to
    own_addresses: tuple[str, ...] = ()  # MAILROOM_OWN_ADDRESSES: the user's, besides the server's
