"""Deliberately broken builds of the service, for ``make soak-selftest``.

Each defect is one the soak must catch; the self-test runs the soak against
each and passes only if every run fails. ``SOAK_BREAK`` names the defect in
the service's environment; the patch is applied before it starts.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from mailroom.observe import telemetry
from mailroom.triage import bookkeeping, steps, workflow
from mailroom.triage.records import SenderRecord, Stage

BROKEN = {
    "skip": "a sender skipped now and then (the next pass covers it)",
    "flag": "a valid sender given the error label one time in five",
    "one-email": "only the labelled email re-filed",
    "health-pass": "/health always says pass",
    "label-first": "the label removed before re-filing",
    "forget-part-way": "a decision stopped part-way recorded as if nothing of it stood",
    "no-trust": "the people the user wrote to never trusted",
    "no-list-rules": "a list's later posts never filed by its rule",
}


def apply(kind: str) -> None:
    if kind not in BROKEN:
        raise SystemExit(f"SOAK_BREAK: unknown defect {kind!r} (one of {', '.join(BROKEN)})")
    count = itertools.count(1)

    async def skipping(p: steps.Pass, records: list[SenderRecord]) -> list[SenderRecord]:
        return [r for r in await steps.look_up(p, records) if next(count) % 3]

    async def flagging(p: steps.Pass, records: list[SenderRecord]) -> list[SenderRecord]:
        out = []
        for record in await steps.one_category_per_contact(p, records):
            if next(count) % 5 == 0:
                await p.flag(list(record.work.emails), p.result)
                record.stage = Stage.FLAGGED
            else:
                out.append(record)
        return out

    async def labelled_only(p: steps.Pass, records: list[SenderRecord]) -> list[SenderRecord]:
        for record in records:
            record.refiled = {k: v for k, v in record.refiled.items() if k in record.work.emails}
        return await steps.refile(p, records)

    async def unlabel_first(p: steps.Pass, records: list[SenderRecord]) -> list[SenderRecord]:
        return await steps.refile(p, await steps.unlabel(p, records))

    async def nothing(p: steps.Pass, records: list[SenderRecord]) -> list[SenderRecord]:
        return records

    def forgetting(self: bookkeeping.Bookkeeper, records: Iterable[SenderRecord]) -> None:
        records = list(records)
        for record in records:
            record.wrote = False  # as if its writes had never begun: "failed"
        original_outcomes(self, records)

    original_outcomes = bookkeeping.Bookkeeper.outcomes

    def always_pass(*args: Any, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        _, body = original_evaluate(*args, **kwargs)
        return "pass", {**body, "status": "pass"}

    async def trusting_nobody(*args: Any, **kwargs: Any) -> list[Any]:
        return []

    async def filing_nothing(*args: Any, **kwargs: Any) -> int:
        return 0

    original_evaluate = telemetry.__dict__["evaluate"]
    patches: dict[str, list[tuple[Any, str, Any]]] = {
        "skip": [(workflow, "look_up", skipping)],
        "flag": [(workflow, "one_category_per_contact", flagging)],
        "one-email": [(workflow, "refile", labelled_only)],
        "label-first": [(workflow, "refile", unlabel_first), (workflow, "unlabel", nothing)],
        "health-pass": [(telemetry, "evaluate", always_pass)],
        "forget-part-way": [(bookkeeping.Bookkeeper, "outcomes", forgetting)],
        "no-trust": [(workflow.Triage, "_trusted", trusting_nobody)],
        "no-list-rules": [(workflow, "file_by_rules", filing_nothing)],
    }
    for module, name, replacement in patches[kind]:
        setattr(module, name, replacement)
