"""What the world sends cannot stop triage: clients and workflow against the stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from mailroom.carddav.client import Card, CardDavClient
from mailroom.carddav.errors import CardDavError, PreconditionFailed
from mailroom.contacts.book import ContactsBackend
from mailroom.core.secret import Secret
from mailroom.jmap.errors import JmapTransportError
from mailroom.sandbox.mailstore import MailStore
from tests.conftest import Harness, Sleeps, make_clients, ready
from tests.faults import FaultySandbox

pytestmark = pytest.mark.anyio


def label(h: Harness, email_id: str, label_name: str) -> None:
    h.mail.set_mailboxes(email_id, h.mail.mailbox_names(email_id) | {label_name})


async def triage_with(
    store: MailStore, senders: dict[str, int], backend: ContactsBackend = ContactsBackend.CARDDAV
) -> dict[str, list[str]]:
    """Deliver, label one email per sender, run one pass; returns ids by sender."""
    with FaultySandbox(mail=store) as sb:
        sb.mail.ensure_mailbox("Screener")
        ids = {s: [sb.mail.deliver(s) for _ in range(n)] for s, n in senders.items()}
        async with httpx.AsyncClient() as http:
            jmap, _, book, triage = make_clients(sb, http, Sleeps(), backend)
            await ready(jmap, book, triage)
            for first, *_ in ids.values():
                sb.mail.set_mailboxes(first, {"Screener", "@ToFeed"})
            result = await triage.run_pass()
            assert result.failures == 0
            assert result.senders_triaged == len(senders)
            for sender_ids in ids.values():
                assert all(sb.mail.mailbox_names(i) == {"Feed"} for i in sender_ids)
        return ids


BACKENDS = pytest.mark.parametrize(
    "backend", [ContactsBackend.CARDDAV, ContactsBackend.JMAP], ids=["carddav", "jmap"]
)


@BACKENDS
async def test_paging_follows_the_limit_the_server_returns(backend: ContactsBackend) -> None:
    # The server clamps every query to 7 ids and says so in "limit": the scan
    # and the senders' mail must go on page after page, not stop at the first.
    await triage_with(MailStore(query_limit=7), {"many@x.com": 30, "other@x.com": 3}, backend)
    await triage_with(
        MailStore(query_limit=7), {f"s{i}@x.com": 1 for i in range(20)}, backend
    )  # 20 labelled emails: three scan pages


@BACKENDS
@pytest.mark.parametrize("max_calls", [1, 2, 3])
async def test_max_calls_in_request_of_one_or_two_works(
    max_calls: int, backend: ContactsBackend
) -> None:
    await triage_with(
        MailStore(max_calls=max_calls, max_get=5, max_set=3),
        {"a@x.com": 12, "b@x.com": 1, **{f"c{i}@x.com": 1 for i in range(7)}},
        backend,
    )


async def test_an_unexpected_error_for_one_sender_fails_that_sender_only(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    good, odd = h.mail.deliver("good@x.com"), h.mail.deliver("odd@x.com")
    label(h, good, "@ToFeed")
    label(h, odd, "@ToFeed")
    from mailroom.carddav import vcard
    from mailroom.jmap import jscontact

    def choking(real: Any) -> Any:
        def make(uid: str, address: str, *args: Any) -> Any:
            if address == "odd@x.com":
                raise RuntimeError("vobject choked on an odd card")  # not a known error
            return real(uid, address, *args)

        return make

    monkeypatch.setattr(vcard, "new_contact", choking(vcard.new_contact))
    monkeypatch.setattr(jscontact, "new_card", choking(jscontact.new_card))
    result = await h.triage.run_pass()
    assert (result.senders_triaged, result.failures) == (1, 1)
    assert result.last_error == "vobject choked on an odd card"
    assert h.mail.mailbox_names(good) == {"Feed"}
    assert h.mail.mailbox_names(odd) == {"Screener", "@ToFeed"}  # kept for the next pass


async def test_carddav_credentials_rejected_fail_the_whole_pass(dav_harness: Harness) -> None:
    from mailroom.carddav.errors import CardDavAuthError

    h = dav_harness
    for sender in ("a@x.com", "b@x.com"):
        label(h, h.mail.deliver(sender), "@ToFeed")
    h.sandbox.faults.force("carddav", 401)
    with pytest.raises(CardDavAuthError):
        await h.triage.run_pass()
    assert len(h.mail.emails_in("@ToFeed")) == 2  # nothing lost


async def test_one_email_refusing_the_error_label_blocks_nobody(harness: Harness) -> None:
    h = harness
    torn = h.mail.deliver("torn@x.com")
    label(h, torn, "@ToFeed")
    label(h, torn, "@ToJail")  # conflict: gets the error label…
    h.mail.refuse_updates.add(torn)  # …which the server refuses
    fine = h.mail.deliver("fine@x.com")
    label(h, fine, "@ToImbox")
    result = await h.triage.run_pass()
    assert result.unflagged == 1
    assert result.senders_triaged == 1
    assert "@ToImbox" not in h.mail.mailbox_names(fine)
    assert "Screener" not in h.mail.mailbox_names(fine)
    assert h.mail.mailbox_names(torn) == {"Screener", "@ToFeed", "@ToJail"}


@pytest.fixture
async def dav(sandbox: FaultySandbox) -> AsyncIterator[CardDavClient]:
    async with httpx.AsyncClient() as http:
        client = CardDavClient(http, sandbox.url, sandbox.username, Secret(sandbox.password))
        await client.discover()
        yield client


CARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:u1\r\nFN:A\r\nEMAIL:a@x.com\r\nEND:VCARD\r\n"


async def test_a_write_without_a_known_etag_reads_first(
    sandbox: FaultySandbox, dav: CardDavClient
) -> None:
    made = await dav.create(CARD, "u1")
    blind = Card(made.href, None, CARD)  # e.g. a server that sent no ETag on create
    written = await dav.update(blind, CARD.replace("FN:A", "FN:B"))
    assert written.etag
    assert sandbox.contacts.blind_writes == 0
    # Changed by someone else since we read it: refused, not overwritten.
    stale = Card(made.href, None, CARD)
    with pytest.raises(PreconditionFailed):
        await dav.update(stale, CARD.replace("FN:A", "FN:C"))
    assert "FN:B" in (await dav.get(made.href) or stale).text


async def test_carddav_never_sends_credentials_elsewhere(
    sandbox: FaultySandbox, dav: CardDavClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailroom.sandbox.contactstore import ContactStore

    with pytest.raises(CardDavError, match="refusing to send credentials"):
        await dav.get("http://127.0.0.2:9/evil.vcf")  # another origin
    with pytest.raises(CardDavError, match="https required"):
        await dav.get("http://example.com/x.vcf")  # plain http off loopback
    # The well-known URL redirects to another origin.
    monkeypatch.setattr(ContactStore, "principal_path", property(lambda _: "http://127.0.0.2:1/p/"))
    async with httpx.AsyncClient() as http:
        fresh = CardDavClient(http, sandbox.url, sandbox.username, Secret(sandbox.password))
        with pytest.raises(CardDavError, match="refusing to send credentials"):
            await fresh.discover()


async def absurd_answer(h: Harness, route: str) -> str:
    """Label a sender, make the route's next answer 600 MiB; the failure's words."""
    eid = h.mail.deliver("big@x.example")
    label(h, eid, "@ToFeed")
    h.sandbox.faults.delay_route = route  # type: ignore[assignment]
    h.sandbox.faults.huge_answer = 600 * 1024 * 1024  # never read
    if route == "api":  # the scan itself: the pass fails (and is retried)
        with pytest.raises(JmapTransportError) as info:
            await h.triage.run_pass()
        message = str(info.value)
    else:  # a contacts read: that pass's senders fail
        result = await h.triage.run_pass()
        assert result.failures == 1
        message = str(result.last_error)
    assert "@ToFeed" in h.mail.mailbox_names(eid)  # nothing lost: the next pass triages
    again = await h.triage.run_pass()
    assert again.senders == [("big@x.example", "Feed")]
    return message


async def test_a_jmap_answer_of_absurd_size_is_abandoned(harness: Harness) -> None:
    message = await absurd_answer(harness, "api")
    assert "JMAP API: the answer from 127.0.0.1 is larger than 16 MiB; abandoned" in message


async def test_a_carddav_answer_of_absurd_size_is_abandoned(dav_harness: Harness) -> None:
    message = await absurd_answer(dav_harness, "carddav")
    assert "the answer from 127.0.0.1 is larger than 32 MiB; abandoned" in message


async def test_a_changed_session_is_fetched_again_and_used(harness: Harness) -> None:
    h = harness
    label(h, h.mail.deliver("before@x.example"), "@ToFeed")
    await h.triage.run_pass()
    # The server moves its API (a new apiUrl) and says so in sessionState.
    h.sandbox.api_path = "/jmap/api-v2/"
    h.sandbox.session_state += 1
    label(h, h.mail.deliver("after@x.example"), "@ToFeed")
    first = await h.triage.run_pass()  # answered on the old URL, learns of the change
    assert h.jmap.session.api_url.endswith("/jmap/api-v2/")
    assert h.jmap.session.state == "1"
    moved = h.sandbox.api_paths.get("/jmap/api-v2/", 0)
    label(h, h.mail.deliver("later@x.example"), "@ToFeed")
    second = await h.triage.run_pass()
    assert h.sandbox.api_paths.get("/jmap/api-v2/", 0) > moved  # the new URL in use
    assert first.senders + second.senders == [
        ("after@x.example", "Feed"),
        ("later@x.example", "Feed"),
    ]
