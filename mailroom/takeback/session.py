"""Connecting for taking decisions back: the account's mailboxes and managed
groups read in one round, and the batched means over them (``undo``,
``reset``, and a domain rule's undo)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from mailroom.account.mailboxes import map_mailboxes
from mailroom.jmap.wire import MAILBOXES, mailboxes_in
from mailroom.ledger.store import Ledger
from mailroom.net import api_client
from mailroom.settings import Settings
from mailroom.takeback.apply import TakeBack
from mailroom.wiring import Clients, make_clients


@dataclass
class Session:
    """The ledger, the means to take back, and every mailbox's name for the output."""

    ledger: Ledger
    takeback: TakeBack
    names: dict[str, str]


@contextlib.asynccontextmanager
async def open_session(
    settings: Settings, ledger: Ledger, *, apply: bool
) -> AsyncIterator[Session]:
    """The servers, for taking back: the mailboxes and the managed groups (the
    ledger checked to record this account; bound to it when ``apply``)."""
    async with api_client(settings.poll_interval) as http:
        clients = make_clients(settings, http, dry_run=not apply, ledger=ledger)
        await clients.connect()
        yield await takeback_of(clients, ledger)


async def takeback_of(clients: Clients, ledger: Ledger) -> Session:
    """The means to take back over connected ``clients`` (the command's, or the
    running service's for the web pages): the mailboxes and managed groups read."""
    book = clients.book
    assert book is not None
    config = clients.triage.config
    # The mailboxes ride in the request that finds the groups (JMAP
    # contacts); over CardDAV they are a request of their own.
    listing = clients.jmap.ride_along(MAILBOXES)
    await book.find_groups(config.categories.contact_groups)
    responses = await clients.jmap.answer(listing)
    boxes = map_mailboxes(config, mailboxes_in(responses, listing.call.call_id)[0])
    labels = frozenset({*boxes.labels.values(), boxes.error_label, *boxes.extra_labels} - {""})
    takeback = TakeBack(clients.jmap, book, boxes, labels)
    return Session(ledger, takeback, {**ledger.mailbox_names(), **boxes.names})
