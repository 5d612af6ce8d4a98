"""What can go wrong over CardDAV, in the contact book's error tree."""

from __future__ import annotations

from mailroom.contacts.book import ContactsAuthError, ContactsError


class CardDavError(ContactsError):
    """Base class for CardDAV failures; messages never carry credentials."""


class CardDavAuthError(CardDavError, ContactsAuthError):
    def __init__(self, status: int, what: str) -> None:
        reason = "rejected the username or password" if status == 401 else "refused access"
        super().__init__(f"{what}: CardDAV server {reason} (HTTP {status})")
        self.status = status


class CardDavHttpError(CardDavError):
    def __init__(self, status: int, what: str) -> None:
        super().__init__(f"{what}: unexpected HTTP {status}")
        self.status = status


class PreconditionFailed(CardDavError):
    """412: the card changed since it was read (If-Match) or exists (If-None-Match)."""
