"""What the triage workflow needs of an address book, for every backend.

A pass works on all its senders at once: ``lookup`` reads what the book has
for every sender in a constant number of requests, the workflow plans the
group changes (pure, in ``triage/planning.py``), and ``apply`` writes them
together. Outcomes stay per sender: ``apply`` names each sender whose contact
or groups could not be written, and the workflow keeps those senders' labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

from mailroom.contacts import uids
from mailroom.errors import ServerError

ContactKind = Literal["person", "company"]


class ContactsBackend(StrEnum):
    JMAP = "jmap"  # RFC 9610 over the JMAP API token
    CARDDAV = "carddav"  # RFC 6352 with an app password


class ContactAction(StrEnum):
    """What writing a sender's contact will do."""

    CREATE = "create"
    FILL = "fill empty fields"
    KEEP = "keep"


class ContactsError(ServerError):
    """A contacts failure that is not the credentials (those propagate as auth errors)."""


class ContactsAuthError(ContactsError):
    """The contacts server rejected the credentials: every sender fails, the pass too."""


class ContactKept(ContactsError):
    """A contact Mailroom was to delete stayed: it changed since it was read."""


class GroupMissingError(ContactsError):
    """A contact group Mailroom manages disappeared (deleted by the user?)."""

    def __init__(self, message: str, group: str | None = None) -> None:
        super().__init__(message)
        self.group = group


@dataclass(frozen=True)
class Want:
    """The contact a sender should have."""

    address: str  # lower case, as planning gives it
    name: str  # the display name from the email, may be empty
    kind: ContactKind
    # For an undo's check of a contact Mailroom made for this want: the (name,
    # kind) of each later fill of its empty fields by Mailroom itself (a
    # re-triage to the other kind): those are not someone else's change.
    fills: tuple[tuple[str, ContactKind], ...] = ()


@dataclass(frozen=True)
class Twin:
    """Another contact with the sender's address (an import's duplicate, say).

    It is never filled, but its groups move with the sender's: whatever the
    address book holds, a sender ends in exactly one category.
    """

    uid: str
    groups: frozenset[str]


@dataclass(frozen=True)
class Known:
    """What the book has for one sender."""

    want: Want
    uid: str | None  # the contact's UID; None when there is no contact yet
    action: ContactAction
    groups: frozenset[str]  # the managed groups the contact is in
    twins: tuple[Twin, ...] = ()
    # The contact holds exactly what Mailroom writes for ``want`` and nothing
    # more: nobody changed the contact Mailroom made (an undo may delete it).
    pristine: bool = False

    @property
    def all_groups(self) -> frozenset[str]:
        """The managed groups any of the sender's contacts is in: what planning starts from."""
        return self.groups.union(*(t.groups for t in self.twins))


@dataclass
class Lookup:
    """What ``lookup`` found: each sender known, or the reason it cannot be."""

    known: dict[str, Known] = field(default_factory=dict)
    failed: dict[str, Exception] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One sender's contact write and group moves, as planned."""

    known: Known
    join: tuple[str, ...]
    leave: tuple[str, ...]
    # The uid a contact made by this change gets, chosen when it is planned so
    # the ledger can record it before the contact exists.
    new_uid: str = field(default_factory=uids.new_uid)
    # Delete the contact once it has left the groups (an undo of the triage
    # that made it; only a pristine contact). If it changed meanwhile it stays
    # and ``apply`` names it with a ContactKept.
    destroy: bool = False

    @property
    def uid(self) -> str:
        """The sender's contact uid, once written: the known one, or the new one."""
        return self.known.uid if self.known.uid is not None else self.new_uid

    @property
    def address(self) -> str:
        return self.known.want.address

    @property
    def writes(self) -> bool:
        return (
            self.destroy
            or self.known.action is not ContactAction.KEEP
            or any(join or leave for _, join, leave in self.moves())
        )

    def moves(self) -> list[tuple[str | None, tuple[str, ...], tuple[str, ...]]]:
        """(uid, groups to join, groups to leave) for each of the sender's contacts.

        ``join`` and ``leave`` were planned from every contact's groups
        together; each contact then joins what it lacks of the target and
        leaves what it has outside it. The uid is None for a contact not yet made.
        """
        target = [*self.join, *sorted(self.known.all_groups - set(self.leave) - set(self.join))]
        contacts = [(self.known.uid, self.known.groups)]
        contacts += [(t.uid, t.groups) for t in self.known.twins]
        return [
            (
                uid,
                tuple(g for g in target if g not in groups),
                tuple(g for g in self.leave if g in groups),
            )
            for uid, groups in contacts
        ]


class ContactBook(Protocol):
    """An address book holding contacts and the groups Mailroom manages."""

    backend: ContactsBackend

    @property
    def groups(self) -> Mapping[str, str]:
        """The managed groups found by the last ``find_groups`` (name -> id)."""
        ...

    async def open(self) -> str:
        """Find the address book; returns a line saying which one."""
        ...

    async def find_groups(self, names: Iterable[str]) -> dict[str, str]:
        """The groups named ``names`` that exist (name -> id); writes nothing.

        Mailroom works with exactly these until the next call: a group missing
        here fails its category's senders until ``mailroom setup --apply``.
        """
        ...

    async def create_group(self, name: str) -> str: ...

    async def lookup(self, wants: Sequence[Want]) -> Lookup:
        """What the book has for each sender (by address); reads only.

        A sender whose contact cannot be read safely (an unreadable card with
        its address, say) is in ``failed``: never make a second contact beside it.
        """
        ...

    async def apply(self, changes: Sequence[Change]) -> dict[str, Exception]:
        """Write every change; returns the senders that failed and why.

        Raises only what fails every sender (the credentials, a dead server).
        """
        ...
