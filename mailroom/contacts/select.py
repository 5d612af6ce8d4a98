"""Which contacts backend to use: ``MAILROOM_CONTACTS`` against what the server offers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailroom.contacts.book import ContactsBackend
from mailroom.errors import ConfigError

JMAP_CONTACTS = "urn:ietf:params:jmap:contacts"


class ContactsChoice(StrEnum):
    """The ``MAILROOM_CONTACTS`` setting."""

    AUTO = "auto"
    JMAP = "jmap"
    CARDDAV = "carddav"


class ContactsUnavailable(ConfigError):
    """The backend asked for cannot be used: the settings or the server must change."""


@dataclass(frozen=True)
class Selection:
    backend: ContactsBackend
    reason: str  # for the start-up log and `mailroom check`


def choose_backend(
    choice: ContactsChoice, *, jmap_contacts: bool, carddav_configured: bool
) -> Selection:
    """Pure: the backend and why, or ContactsUnavailable naming what is missing."""
    if choice is ContactsChoice.JMAP:
        if not jmap_contacts:
            raise ContactsUnavailable(
                f"MAILROOM_CONTACTS=jmap, but the JMAP session offers no {JMAP_CONTACTS} "
                "(use MAILROOM_CONTACTS=carddav with MAILROOM_CARDDAV_USERNAME and "
                "MAILROOM_CARDDAV_PASSWORD, or a token with the Contacts scope)"
            )
        return Selection(ContactsBackend.JMAP, "MAILROOM_CONTACTS=jmap")
    if choice is ContactsChoice.CARDDAV:
        # The settings already refuse carddav without its username and password.
        return Selection(ContactsBackend.CARDDAV, "MAILROOM_CONTACTS=carddav")
    if carddav_configured:
        return Selection(
            ContactsBackend.CARDDAV,
            "MAILROOM_CONTACTS=auto and a CardDAV password is set",
        )
    if jmap_contacts:
        return Selection(
            ContactsBackend.JMAP,
            f"MAILROOM_CONTACTS=auto, the server offers {JMAP_CONTACTS} "
            "and no CardDAV password is set",
        )
    raise ContactsUnavailable(
        f"no way to reach contacts: the JMAP session offers no {JMAP_CONTACTS} (is the "
        "token missing the Contacts scope?) and no CardDAV password is set "
        "(MAILROOM_CARDDAV_USERNAME and MAILROOM_CARDDAV_PASSWORD)"
    )
