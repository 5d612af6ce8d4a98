"""A dry run's account of what a real pass would write, said once per distinct plan."""

from __future__ import annotations

import logging
from typing import Any

from mailroom.triage.records import SenderRecord

log = logging.getLogger(__name__)

REHEARSALS_KEPT = 10_000  # plans already logged in a dry run (then DEBUG)


class Rehearsal:
    def __init__(self) -> None:
        self._said: set[tuple[str, ...]] = set()

    def rehearse(self, record: SenderRecord) -> None:
        """What a real pass would write for one sender."""
        work, change = record.work, record.change
        assert change is not None
        fields = {
            "sender": work.sender,
            "category": work.category.name,
            "contact": change.known.action.value,
            "join": ",".join(change.join) or "-",
            "leave": ",".join(change.leave) or "-",
            "emails_refiled": len(record.refiled),
            "labels_removed": len(work.emails),
        }
        key = (work.sender, work.category.name, *sorted(record.mail))
        self.said("dry run: would triage sender", key, fields)

    def said(self, message: str, key: tuple[str, ...], fields: dict[str, Any]) -> None:
        # Nothing changes in a dry run, so every pass plans the same again:
        # say each distinct plan once at INFO.
        new = key not in self._said
        if new and len(self._said) < REHEARSALS_KEPT:
            self._said.add(key)
        log.log(logging.INFO if new else logging.DEBUG, message, extra={"fields": fields})
