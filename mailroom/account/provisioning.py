"""Making the account ready for the settings: ``mailroom check`` and ``mailroom setup``.

Separate from the triage workflow, which never creates anything: what the
account lacks is the user's to create, on their word (`setup --apply`).
"""

from __future__ import annotations

import logging

from mailroom.account.config import TriageConfig
from mailroom.account.review import AccountReview, Need, NeedKind, review_account
from mailroom.contacts.book import ContactBook, ContactsError
from mailroom.jmap.client import JmapClient
from mailroom.jmap.errors import JmapError

log = logging.getLogger(__name__)


class Provisioner:
    def __init__(self, jmap: JmapClient, book: ContactBook, config: TriageConfig) -> None:
        self._jmap = jmap
        self._book = book
        self._config = config

    async def review(self) -> AccountReview:
        """What the settings need and the account has (reads only)."""
        cfg = self._config
        mailboxes, _ = await self._jmap.get_mailboxes()
        groups = await self._book.find_groups(cfg.categories.contact_groups)
        return review_account(
            categories=cfg.categories,
            screener=cfg.screener_mailbox,
            error_label=cfg.error_label,
            extra_labels=(
                (cfg.back_label, "the back-to-Screener label"),
                (cfg.domain_label, "the whole-domain label"),
                (cfg.list_label, "the whole-list label"),
            ),
            mailboxes=mailboxes,
            groups=groups,
        )

    async def provision(self, *, create_screener: bool = False) -> list[tuple[Need, str | None]]:
        """Create what the account lacks; returns each missing need and its error.

        The Screener is the user's own (their rules file mail there), so it is
        made only when asked.
        """
        review = await self.review()
        done: list[tuple[Need, str | None]] = []
        for need in review.missing:
            if need.purpose == "the Screener" and not create_screener:
                done.append((need, "not created: pass --create-screener, or make it yourself"))
                continue
            try:
                if need.kind is NeedKind.MAILBOX:
                    await self._jmap.create_mailbox(need.name)
                else:
                    await self._book.create_group(need.name)
            except (JmapError, ContactsError) as exc:
                done.append((need, str(exc)))
                continue
            log.info("created", extra={"fields": {"what": str(need)}})
            done.append((need, None))
        return done
