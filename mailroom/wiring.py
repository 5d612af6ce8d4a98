"""Connecting to the account: the JMAP client, the contacts backend chosen for
the server, the ledger bound to the account, and the workflow over them.

The service and every command that talks to the account start here, so
commands never import the running service.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import httpx

from mailroom.account.config import TriageConfig
from mailroom.account.provisioning import Provisioner
from mailroom.carddav.book import CardDavBook
from mailroom.carddav.client import CardDavClient
from mailroom.contacts.book import ContactBook, ContactsBackend
from mailroom.contacts.select import ContactsUnavailable, Selection, choose_backend
from mailroom.jmap.client import JmapClient
from mailroom.jmap.contacts import JmapContactBook
from mailroom.jmap.session import Session
from mailroom.ledger.model import AccountKey
from mailroom.ledger.store import Ledger
from mailroom.settings import Settings
from mailroom.triage.workflow import Triage

log = logging.getLogger(__name__)


class Clients:
    """The JMAP client, the contacts backend chosen for this server, and the workflow.

    The backend is known only once the JMAP session is: ``connect()`` reads
    it, chooses (``MAILROOM_CONTACTS``), and opens the address book.
    """

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        *,
        dry_run: bool = False,
        ledger: Ledger | None = None,
    ):
        self.settings = settings
        self.dry_run = dry_run
        self.ledger = ledger
        self.jmap = JmapClient(http, settings.jmap_session_url, settings.jmap_token)
        self.carddav: CardDavClient | None = None
        if settings.carddav_password is not None:
            self.carddav = CardDavClient(
                http, settings.carddav_url, settings.carddav_username, settings.carddav_password
            )
        self.selection: Selection | None = None
        self.book: ContactBook | None = None
        self.book_description = ""
        self._triage: Triage | None = None
        self._provisioner: Provisioner | None = None

    @property
    def triage(self) -> Triage:
        if self._triage is None:
            raise RuntimeError("Clients.connect() has not run")
        return self._triage

    @property
    def provisioner(self) -> Provisioner:
        """What `mailroom check` and `mailroom setup` use to review and make the account."""
        if self._provisioner is None:
            raise RuntimeError("Clients.connect() has not run")
        return self._provisioner

    def choose(self) -> Selection:
        """The contacts backend for the discovered session (raises ContactsUnavailable)."""
        return choose_backend(
            self.settings.contacts,
            jmap_contacts=self.jmap.session.contacts_account_id is not None,
            carddav_configured=self.carddav is not None,
        )

    async def connect(self) -> Selection:
        """Discover JMAP, check the ledger records this account (a dry run only
        reads it), choose the contacts backend and open its address book."""
        await self.jmap.discover()
        if self.ledger is not None:
            key = account_key(self.settings.jmap_session_url, self.jmap.session)
            if self.dry_run:
                self.ledger.check(key)
            else:
                self.ledger.bind(key)
        selection = self.choose()
        book: ContactBook
        if selection.backend is ContactsBackend.JMAP:
            book = JmapContactBook(self.jmap)
        else:
            if self.carddav is None:
                raise ContactsUnavailable("CardDAV chosen but not configured")
            book = CardDavBook(self.carddav)
        self.book_description = await book.open()
        if self.selection != selection or self._triage is None:
            cfg = self.settings
            config = TriageConfig(
                cfg.categories,
                cfg.screener_mailbox,
                cfg.error_label,
                cfg.back_label,
                cfg.domain_label,
                list_label=cfg.list_label,
                trust_sent=cfg.trust_sent,
                own_addresses=cfg.own_addresses,
            )
            ledger = None if self.dry_run else self.ledger  # a dry run writes nothing
            self._triage = Triage(self.jmap, book, config, dry_run=self.dry_run, ledger=ledger)
            self._provisioner = Provisioner(self.jmap, book, config)
            log.info(
                "contacts",
                extra={
                    "fields": {
                        "backend": selection.backend.value,
                        "why": selection.reason,
                        "book": self.book_description,
                    }
                },
            )
        self.selection, self.book = selection, book
        return selection


def account_key(session_url: str, session: Session) -> AccountKey:
    """Which account a ledger records: the server's origin, the user, the account."""
    parts = urlsplit(session_url)
    return AccountKey(
        f"{parts.scheme.lower()}://{(parts.netloc or '').lower()}",
        session.username,
        session.account_id,
    )


def make_clients(
    settings: Settings,
    http: httpx.AsyncClient,
    *,
    dry_run: bool = False,
    ledger: Ledger | None = None,
) -> Clients:
    return Clients(settings, http, dry_run=dry_run, ledger=ledger)
