"""``mailroom setup [--apply] [--create-screener]``: make what the settings need."""

from __future__ import annotations

import sys

from mailroom.account.fastmail_rules import fastmail_rules
from mailroom.account.review import Need
from mailroom.commands.report import Report
from mailroom.correspondents.survey import survey
from mailroom.jmap.errors import JmapError
from mailroom.net import api_client
from mailroom.settings import Settings
from mailroom.wiring import make_clients
from mailroom.writer.commands import writing
from mailroom.writer.lock import WriterBusy


async def provision_account(
    settings: Settings, *, create_screener: bool = False
) -> list[tuple[Need, str | None]]:
    """What ``mailroom setup --apply`` does, without the report: for the demo and tests."""
    async with api_client(settings.poll_interval) as http:
        clients = make_clients(settings, http)
        await clients.connect()
        return await clients.provisioner.provision(create_screener=create_screener)


async def run_setup(
    settings: Settings, *, apply: bool, create_screener: bool, report: Report
) -> int:
    """Plan (and with ``apply``, create); then print the rules. Exit 1 on failure."""
    async with api_client(settings.poll_interval) as http:
        clients = make_clients(settings, http)
        selection = await clients.connect()
        report.info(
            f"contacts over {selection.backend.value.upper()} ({selection.reason}): "
            f"{clients.book_description}"
        )
        review = await clients.provisioner.review()
        for conflict in review.conflicts:
            report.bad(conflict)
        present = [n for n in review.needs if n.present]
        report.info(f"{len(present)} of {len(review.needs)} mailboxes and groups already exist")
        if not review.missing:
            report.ok("nothing to create: the account has everything the settings need")
        elif not apply:
            for need in review.missing:
                if need.purpose == "the Screener" and not create_screener:
                    report.bad(f"missing: {need}", "create it, or pass --create-screener")
                else:
                    report.info(f"would create {need}")
            report.info("dry run: nothing written; add --apply to create these")
        else:
            try:
                # Creating mailboxes and groups writes the account: one writer at a time.
                async with writing(settings, "setup", sys.stderr):
                    made = await clients.provisioner.provision(create_screener=create_screener)
            except WriterBusy as exc:
                report.bad(str(exc))
                made = []
            for need, error in made:
                if error is None:
                    report.ok(f"created {need}")
                else:
                    report.bad(f"{need}: {error}")
        try:
            said = await survey(clients.jmap, settings)
        except JmapError as exc:
            report.warn(f"reading who you have written to: {exc}")
        else:
            if said is not None:
                report.info(said)
    print("\nCreate these rules in Fastmail (Settings → Filters & Rules), in this order:")
    for line in fastmail_rules(settings.categories, settings.screener_mailbox):
        print(f"  {line}")
    return 1 if report.problems else 0
