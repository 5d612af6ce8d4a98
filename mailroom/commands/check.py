"""``mailroom check``: everything a new user needs to know works, read-only.

One line per item with a mark, and under each problem the fix. Exit 0 only
when all is well, 1 when something in the account or on the network is wrong
(invalid settings exit 2 before this runs). Never writes anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from mailroom.commands.report import Report
from mailroom.contacts.book import ContactsAuthError, ContactsBackend, ContactsError
from mailroom.contacts.select import ContactsUnavailable
from mailroom.core.vocabulary import WATCHED_TYPES
from mailroom.core.words import count
from mailroom.correspondents.survey import survey
from mailroom.jmap.errors import JmapAuthError, JmapError
from mailroom.net import api_client
from mailroom.push.messages import StreamFailed, StreamItem, StreamMessage, StreamRefused
from mailroom.push.sse import Event
from mailroom.push.stream import read_stream, stream_client
from mailroom.settings import Settings
from mailroom.wiring import Clients, make_clients

STREAM_WAIT = 10.0
CHECK_PING = 5  # asked of the server so a quiet account still answers within the wait

ADVICE_JMAP = (
    "create a Fastmail API token with the Mail and Contacts scopes (Settings → Privacy & "
    "Security → "
    "Manage API tokens) and set MAILROOM_JMAP_TOKEN (or MAILROOM_JMAP_TOKEN_FILE)"
)
ADVICE_CARDDAV = (
    "create a Fastmail app password with CardDAV access (Settings → Privacy & Security → "
    "App passwords) and set MAILROOM_CARDDAV_USERNAME and MAILROOM_CARDDAV_PASSWORD"
)
ADVICE_SETUP = "run `mailroom setup --apply` (it lists what it will create first without --apply)"


async def run_check(settings: Settings, report: Report) -> int:
    report.ok("settings are valid")
    async with api_client(settings.poll_interval) as http:
        clients = make_clients(settings, http)
        jmap_ok = await _jmap(clients, report)
        contacts_ok = jmap_ok and await _contacts(clients, report)
        if jmap_ok and contacts_ok:
            await _account(clients, report)
        if jmap_ok:
            await _stream(clients, report)
    if report.problems:
        report.info(f"{count(report.problems, 'problem')} found")
        return 1
    report.ok("all is well: `mailroom run` (or the systemd unit) can start")
    return 0


async def _jmap(clients: Clients, report: Report) -> bool:
    try:
        session = await clients.jmap.discover()
    except JmapAuthError as exc:
        report.bad(f"JMAP: {exc}", ADVICE_JMAP)
        return False
    except JmapError as exc:
        report.bad(
            f"JMAP: {exc}", "check MAILROOM_JMAP_SESSION_URL and that this machine reaches it"
        )
        return False
    report.ok(f"JMAP: token accepted, mail capability present ({session.api_url})")
    if session.event_source_url is None:
        report.bad(
            "JMAP: the session has no eventSourceUrl, so no push",
            "Mailroom would still poll every 30 s; use a server that offers push",
        )
    return True


async def _contacts(clients: Clients, report: Report) -> bool:
    try:
        selection = clients.choose()
    except ContactsUnavailable as exc:
        report.bad(f"contacts: {exc}")
        return False
    name = "JMAP contacts" if selection.backend is ContactsBackend.JMAP else "CardDAV"
    try:
        await clients.connect()
    except (ContactsAuthError, JmapAuthError) as exc:
        advice = ADVICE_CARDDAV if selection.backend is ContactsBackend.CARDDAV else ADVICE_JMAP
        report.bad(f"{name}: {exc}", advice)
        return False
    except (ContactsError, JmapError) as exc:
        where = (
            "MAILROOM_CARDDAV_URL"
            if selection.backend is ContactsBackend.CARDDAV
            else "MAILROOM_JMAP_SESSION_URL"
        )
        report.bad(f"{name}: {exc}", f"check {where} and that this machine reaches it")
        return False
    report.ok(f"contacts over {name} ({selection.reason}): {clients.book_description}")
    return True


async def _account(clients: Clients, report: Report) -> None:
    try:
        review = await clients.provisioner.review()
    except (JmapError, ContactsError) as exc:
        report.bad(f"reading the account: {exc}")
        return
    if not review.has_inbox:
        report.bad("the account has no Inbox (no mailbox with role 'inbox')")
    mine = [n for n in review.needs if n.purpose != "the Screener"]
    # Not set up: nothing the categories need is there (the optional labels
    # may be, made for another set of categories).
    bare = bool(mine) and not any(n.present for n in mine if not n.optional)
    if bare:
        # A new account: one line, not a cross per mailbox and group.
        report.bad(
            f"not set up yet: the {sum(not n.present for n in mine)} mailboxes and contact "
            "groups the settings need are missing",
            "run `mailroom setup` to list them, then `mailroom setup --apply` to create them",
        )
    for need in review.needs:
        if bare and need in mine and not need.present:
            continue
        if need.present:
            report.ok(f"{need} exists")
        elif need.purpose == "the Screener":
            report.bad(
                f"{need} is missing",
                "create it and a rule filing mail from senders not in your contacts there, "
                "or run `mailroom setup --apply --create-screener`",
            )
        elif need.optional:
            # An account set up by an older Mailroom: everything else triages.
            report.warn(f"{need} is missing: its feature is off", ADVICE_SETUP)
        else:
            report.bad(f"{need} is missing", ADVICE_SETUP)
    for conflict in review.conflicts:
        report.bad(conflict, "change the setting it names (docs/configuration.md lists them)")
    try:
        own = await clients.triage.own_addresses()
    except JmapError as exc:
        report.bad(f"reading the account's own addresses: {exc}")
        return
    try:
        line = await survey(clients.jmap, clients.settings)
    except JmapError as exc:
        report.warn(f"reading who you have written to: {exc}")
    else:
        if line is not None:
            report.info(line)
    if own.sources:
        report.info(
            "your own addresses, never triaged (mail from them gets the error label): "
            + "; ".join(own.lines())
        )
    else:
        report.warn(
            "the server names no address of yours and your Sent mail shows none: a note to "
            "yourself would be triaged like a stranger's",
            "set MAILROOM_OWN_ADDRESSES to your addresses (comma-separated)",
        )


async def _stream(clients: Clients, report: Report) -> None:
    session = clients.jmap.session
    url = session.stream_url(types=",".join(WATCHED_TYPES), closeafter="no", ping=CHECK_PING)
    if url is None:
        return
    queue: asyncio.Queue[StreamMessage] = asyncio.Queue()
    began = time.monotonic()
    async with stream_client() as http:
        reader = asyncio.create_task(
            read_stream(http, 1, url, clients.jmap.auth_headers, "", queue.put)
        )
        try:
            async with asyncio.timeout(STREAM_WAIT):
                while True:
                    message = await queue.get()
                    if isinstance(message, StreamItem) and isinstance(message.item, Event):
                        kind = message.item.type
                        waited = time.monotonic() - began
                        report.ok(f"event stream: first {kind!r} event after {waited:.1f} s")
                        return
                    if isinstance(message, StreamRefused):
                        fix = ADVICE_JMAP if message.auth else "push is off on this server"
                        report.bad(f"event stream: {message.reason}", fix)
                        return
                    if isinstance(message, StreamFailed):
                        report.bad(f"event stream: {message.reason}")
                        return
        except TimeoutError:
            report.bad(
                f"event stream: no event or ping within {STREAM_WAIT:g} s",
                "a proxy may buffer the stream; Mailroom would rely on polling",
            )
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
