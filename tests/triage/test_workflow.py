"""The Screener workflow end to end against the stand-in, over real sockets."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mailroom.account.provisioning import Provisioner
from mailroom.carddav import vcard
from mailroom.contacts.book import ContactsBackend
from mailroom.sandbox.mailmodel import MethodError
from mailroom.sandbox.mailstore import MailStore
from tests.conftest import Harness, open_harness, ready
from tests.faults import FaultySandbox

pytestmark = pytest.mark.anyio


def label(h: Harness, email_id: str, label_name: str) -> None:
    names = h.mail.mailbox_names(email_id) | {label_name}
    h.mail.set_mailboxes(email_id, names)


def from_sender(h: Harness, address: str) -> list[str]:
    return sorted(
        (e.id for e in h.mail.emails.values() if e.from_[0]["email"] == address),
        key=lambda x: int(x[1:]),
    )


async def test_label_one_email_triages_the_sender(harness: Harness) -> None:
    h = harness
    ids = [h.mail.deliver("news@acme.com", name="Acme News") for _ in range(3)]
    other = h.mail.deliver("someone@else.com")
    label(h, ids[1], "@ToFeed")

    result = await h.triage.run_pass()

    assert dict(result.triaged) == {"Feed": 1}
    assert result.emails_refiled == 3
    assert h.contacts.groups_of_address("news@acme.com") == {"Feed"}
    for eid in ids:
        assert h.mail.mailbox_names(eid) == {"Feed"}
    assert h.mail.mailbox_names(other) == {"Screener"}
    card = vcard.parse(h.contacts.contact_text("news@acme.com") or "")
    assert card.org.value == ["Acme News"]  # a company contact
    # The states our writes produced are the server's current ones.
    assert h.mail.states()["Email"] in result.own_states["Email"]
    assert h.mail.states()["Mailbox"] in result.own_states["Mailbox"]


async def test_person_gets_chain_groups_inbox_and_name(harness: Harness) -> None:
    h = harness
    first = h.mail.deliver("jane@example.org", name="Jane Q. Doe")
    archived = h.mail.deliver("jane@example.org", name="Jane Q. Doe", mailboxes=["Archive"])
    label(h, first, "@ToPerson")

    await h.triage.run_pass()

    assert h.contacts.groups_of_address("jane@example.org") == {"Person", "Imbox"}
    assert h.mail.mailbox_names(first) == {"Person", "Imbox", "Inbox"}
    # Inbox is added only to mail that was in the Screener.
    assert h.mail.mailbox_names(archived) == {"Archive", "Person", "Imbox"}
    card = vcard.parse(h.contacts.contact_text("jane@example.org") or "")
    assert (card.n.value.given, card.n.value.family) == ("Jane Q.", "Doe")


async def test_conflict_flags_emails_and_touches_nothing_else(harness: Harness) -> None:
    h = harness
    a = h.mail.deliver("mixed@x.com")
    b = h.mail.deliver("mixed@x.com")
    label(h, a, "@ToFeed")
    label(h, b, "@ToJail")

    result = await h.triage.run_pass()

    assert result.conflicts == 1
    assert result.senders_triaged == 0
    assert h.mail.mailbox_names(a) == {"Screener", "@ToFeed", "@MailroomError"}
    assert h.mail.mailbox_names(b) == {"Screener", "@ToJail", "@MailroomError"}
    assert h.contacts.contact_uid("mixed@x.com") is None
    # Flagged emails are skipped from now on: a second poll writes nothing.
    before = h.mail.states()
    again = await h.triage.run_pass()
    assert (again.conflicts, again.senders_triaged) == (0, 0)
    assert h.mail.states() == before


async def test_retriage_person_to_feed(harness: Harness) -> None:
    h = harness
    ids = [h.mail.deliver("pat@x.com", name="Pat Smith") for _ in range(2)]
    label(h, ids[0], "@ToPerson")
    await h.triage.run_pass()
    assert h.contacts.groups_of_address("pat@x.com") == {"Person", "Imbox"}
    assert h.mail.mailbox_names(ids[1]) == {"Person", "Imbox", "Inbox"}
    kept = h.mail.deliver("pat@x.com", name="Pat Smith", mailboxes=["Inbox"])  # the user's

    label(h, ids[1], "@ToFeed")
    result = await h.triage.run_pass()

    assert dict(result.triaged) == {"Feed": 1}
    assert h.contacts.groups_of_address("pat@x.com") == {"Feed"}
    for eid in ids:
        # A Feed sender is not in the Imbox: out of the Inbox with Person and Imbox.
        assert h.mail.mailbox_names(eid) == {"Feed"}
    # Mail the user keeps in the Inbox for another reason (never in a
    # category's mailbox) stays there.
    assert h.mail.mailbox_names(kept) == {"Feed", "Inbox"}
    assert h.contacts.groups_named("Feed") == 1  # no duplicate groups


async def test_existing_contact_data_is_kept(harness: Harness) -> None:
    h = harness
    h.contacts.write(
        "mine.vcf",
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:mine-1\r\nFN:My Dentist\r\nN:;;;;\r\n"
        "ORG:Smile Clinic\r\nNOTE:call before 5\r\nEMAIL:Front@Dentist.example\r\nEND:VCARD\r\n",
    )
    eid = h.mail.deliver("front@dentist.example", name="Front Desk")
    label(h, eid, "@ToPaperTrail")

    await h.triage.run_pass()

    text = h.contacts.contact_text("front@dentist.example") or ""
    card = vcard.parse(text)
    assert card.fn.value == "My Dentist"
    assert card.org.value == ["Smile Clinic"]
    assert card.note.value == "call before 5"
    assert h.contacts.groups_of_address("front@dentist.example") == {"Paper Trail"}
    assert len([c for c in h.contacts.cards if c.endswith(".vcf")]) == 6  # 5 groups + 1


async def test_from_filter_text_match_is_confirmed(harness: Harness) -> None:
    h = harness
    bob = h.mail.deliver("bob@x.com")
    jimbob = h.mail.deliver("jimbob@x.com")
    label(h, bob, "@ToJail")

    await h.triage.run_pass()

    assert h.mail.mailbox_names(bob) == {"Jail"}
    assert h.mail.mailbox_names(jimbob) == {"Screener"}


async def test_trash_and_junk_are_never_touched(harness: Harness) -> None:
    h = harness
    eid = h.mail.deliver("x@y.com")
    trashed = h.mail.deliver("x@y.com", mailboxes=["Trash"])
    spam = h.mail.deliver("x@y.com", mailboxes=["Spam"])
    label(h, eid, "@ToFeed")

    await h.triage.run_pass()

    assert h.mail.mailbox_names(trashed) == {"Trash"}
    assert h.mail.mailbox_names(spam) == {"Spam"}
    assert h.mail.mailbox_names(eid) == {"Feed"}


async def test_idempotent_second_poll_writes_nothing(harness: Harness) -> None:
    h = harness
    eid = h.mail.deliver("a@b.com")
    label(h, eid, "@ToImbox")
    await h.triage.run_pass()
    states = h.mail.states()
    cards = {k: v.etag for k, v in h.contacts.cards.items()}
    before = h.sandbox.total_requests()

    result = await h.triage.run_pass()

    assert h.sandbox.total_requests() - before == 1  # one request, a read
    assert h.mail.states() == states
    assert {k: v.etag for k, v in h.contacts.cards.items()} == cards
    assert result.senders_triaged == 0
    assert result.own_states == {"Email": set(), "Mailbox": set()}


async def test_requests_per_sender_do_not_grow_with_mail(harness: Harness) -> None:
    h = harness

    async def cost(address: str, emails: int) -> int:
        ids = [h.mail.deliver(address) for _ in range(emails)]
        label(h, ids[0], "@ToFeed")
        before = h.sandbox.total_requests()
        await h.triage.run_pass()
        assert all(h.mail.mailbox_names(i) == {"Feed"} for i in ids)
        return h.sandbox.total_requests() - before

    assert await cost("one@x.com", 1) == await cost("many@x.com", 60)


async def test_300_emails_from_one_sender_paging_and_chunking() -> None:
    # Small limits force paging of the sender query and chunking of Email/set.
    store = MailStore(max_calls=4, max_get=50, max_set=40)
    with FaultySandbox(mail=store) as sb:
        sb.mail.ensure_mailbox("Screener")
        ids = [sb.mail.deliver("bulk@x.com", name="Bulk") for _ in range(300)]
        import httpx

        from tests.conftest import Sleeps, make_clients

        async with httpx.AsyncClient() as http:
            jmap, _, book, triage = make_clients(sb, http, Sleeps())
            await ready(jmap, book, triage)
            for eid in ids[:120]:  # more labelled emails than one scan page
                sb.mail.set_mailboxes(eid, {"Screener", "@ToFeed"})
            result = await triage.run_pass()
            assert result.emails_refiled == 300
            assert all(sb.mail.mailbox_names(e) == {"Feed"} for e in ids)
            assert not sb.mail.emails_in("@ToFeed")
            assert jmap.session.max_objects_in_set == 40


async def test_one_sender_failing_does_not_stop_others(harness: Harness) -> None:
    h = harness
    good = h.mail.deliver("good@x.com")
    bad = h.mail.deliver("bad@x.com")
    label(h, good, "@ToFeed")
    label(h, bad, "@ToFeed")
    h.mail.refuse_updates.add(bad)  # the server refuses this one email

    result = await h.triage.run_pass()

    assert (result.senders_triaged, result.failures) == (1, 1)
    assert h.mail.mailbox_names(good) == {"Feed"}
    assert h.mail.mailbox_names(bad) == {"Screener", "@ToFeed"}  # label kept: retried

    h.mail.refuse_updates.clear()
    result = await h.triage.run_pass()
    assert (result.senders_triaged, result.failures) == (1, 0)
    assert h.mail.mailbox_names(bad) == {"Feed"}


async def test_a_sender_whose_contact_fails_among_many(harness: Harness) -> None:
    h = harness
    senders = [f"s{i}@many.example" for i in range(8)]
    ids = {s: h.mail.deliver(s, name=f"Sender {s[1]}") for s in senders}
    for eid in ids.values():
        label(h, eid, "@ToPerson")
    refused = senders[3]
    h.contacts.refuse_addresses.add(refused)  # its contact cannot be written

    result = await h.triage.run_pass()

    assert (result.senders_triaged, result.failures) == (7, 1)
    assert h.mail.mailbox_names(ids[refused]) == {"Screener", "@ToPerson"}
    assert h.contacts.contact_uid(refused) is None
    # The refused sender is in no group, not even as a dangling member.
    everyone = h.contacts.group_members("Person") | h.contacts.group_members("Imbox")
    assert len(everyone) == 7
    for s in senders:
        if s != refused:
            assert h.contacts.groups_of_address(s) == {"Person", "Imbox"}
            assert h.mail.mailbox_names(ids[s]) == {"Person", "Imbox", "Inbox"}

    h.contacts.refuse_addresses.clear()
    result = await h.triage.run_pass()
    assert (result.senders_triaged, result.failures) == (1, 0)
    assert h.contacts.groups_of_address(refused) == {"Person", "Imbox"}


async def test_refused_update_keeps_the_label(harness: Harness) -> None:
    h = harness
    eid = h.mail.deliver("r@x.com")
    label(h, eid, "@ToJail")

    def refuse(name: str, args: dict[str, object]) -> None:
        if name == "Email/set":
            raise MethodError("forbidden")

    h.mail.before_method = refuse
    result = await h.triage.run_pass()
    assert result.failures == 1
    assert "@ToJail" in h.mail.mailbox_names(eid)
    # Contact work done before the failure is kept and not repeated wrongly.
    assert h.contacts.groups_of_address("r@x.com") == {"Jail"}


async def test_412_race_on_a_group_loses_no_member(dav_harness: Harness) -> None:
    h = dav_harness
    eid = h.mail.deliver("race@x.com")
    label(h, eid, "@ToFeed")
    feed = next(
        name
        for name, card in h.contacts.cards.items()
        if "FN:Feed" in card.text and "group" in card.text
    )
    raced: list[str] = []

    def concurrent_edit(name: str) -> None:
        # Another client adds a member just before our first write lands.
        if name == feed and not raced:
            raced.append(name)
            text = vcard.with_member(h.contacts.dav_text(feed), "someone-else")
            assert text is not None
            h.contacts.write(feed, text)

    h.contacts.before_put = concurrent_edit
    await h.triage.run_pass()

    assert raced == [feed]
    uid = h.contacts.contact_uid("race@x.com")
    assert h.contacts.group_members("Feed") == {"someone-else", uid}
    assert h.sleeps.waits  # backed off before re-reading


async def test_a_deleted_group_fails_its_category_only_until_setup(harness: Harness) -> None:
    h = harness
    jail = next(n for n, c in h.contacts.cards.items() if "FN:Jail" in c.text)
    del h.contacts.cards[jail]
    eid = h.mail.deliver("j@x.com")
    label(h, eid, "@ToJail")
    feed = h.mail.deliver("f@x.com")
    label(h, feed, "@ToFeed")

    first = await h.triage.run_pass()
    assert (first.senders_triaged, first.failures) == (1, 1)  # Feed went on
    second = await h.triage.run_pass()  # never recreated behind the user's back
    assert second.failures == 1
    assert second.missing == {"contact group 'Jail'"}
    assert "run `mailroom setup --apply`" in str(second.last_error)
    assert h.mail.mailbox_names(eid) == {"Screener", "@ToJail"}  # label kept
    assert not h.contacts.groups_named("Jail")

    await Provisioner(h.jmap, h.book, h.triage.config).provision()  # `mailroom setup --apply`
    third = await h.triage.run_pass()
    assert (third.senders_triaged, third.missing) == (1, set())
    assert h.contacts.groups_of_address("j@x.com") == {"Jail"}


async def test_a_deleted_destination_fails_its_category_and_health_names_it(
    harness: Harness,
) -> None:
    h = harness
    with h.mail.lock:
        gone = h.mail.mailbox_id("Paper Trail")
        del h.mail.mailboxes[gone]
        h.mail._bump(mailboxes=True)
    eid = h.mail.deliver("bank@x.com")
    label(h, eid, "@ToPaperTrail")
    result = await h.triage.run_pass()
    assert result.failures == 1 and "mailbox 'Paper Trail'" in result.missing
    assert "@ToPaperTrail" in h.mail.mailbox_names(eid)


async def test_renamed_label_mailbox_is_resolved_again(harness: Harness) -> None:
    h = harness
    old = h.mail.mailbox_id("@ToFeed")
    h.mail.mailboxes[old].name = "Old Feed Label"
    eid = h.mail.deliver("n@x.com")
    result = await h.triage.run_pass()  # notices, creates a new @ToFeed
    assert result.senders_triaged == 0
    label(h, eid, "@ToFeed")
    result = await h.triage.run_pass()
    assert result.senders_triaged == 1
    assert h.mail.mailbox_names(eid) == {"Feed"}


async def test_idle_poll_is_one_request(harness: Harness) -> None:
    before = harness.sandbox.total_requests()
    result = await harness.triage.run_pass()
    assert harness.sandbox.total_requests() - before == 1
    assert result.seen_states == harness.mail.states()


async def test_unreadable_sender_gets_error_label(harness: Harness) -> None:
    h = harness
    eid = h.mail.deliver("nobody")  # no @: not an address
    label(h, eid, "@ToFeed")
    await h.triage.run_pass()
    assert "@MailroomError" in h.mail.mailbox_names(eid)


@pytest.mark.parametrize("senders", [1, 10, 100])
async def test_requests_per_pass_are_constant_in_senders(harness: Harness, senders: int) -> None:
    h = harness
    for i in range(senders):
        first = h.mail.deliver(f"s{i}@batch.example", name=f"Sender {i}")
        h.mail.deliver(f"s{i}@batch.example", name=f"Sender {i}", mailboxes=["Archive"])
        label(h, first, "@ToFeed")
    before = h.sandbox.total_requests()

    result = await h.triage.run_pass()

    assert (result.senders_triaged, result.failures) == (senders, 0)
    assert result.emails_refiled == 2 * senders
    assert len(h.contacts.group_members("Feed")) == senders
    requests = h.sandbox.total_requests() - before
    # scan, contacts lookup, all senders' mail, the re-filing in two (the new
    # mailboxes added and read back, then the old ones removed), one
    # label-removal Email/set; plus the contact writes:
    if h.backend is ContactsBackend.JMAP:
        assert requests == 6 + 1  # one ContactCard/set for every contact and group
    else:
        # CardDAV reads in two (search + group multiget) and writes one PUT per
        # new contact and one per changed group (all joined Feed).
        assert requests == 7 + senders + 1


async def test_an_existing_contact_gets_only_its_empty_fields_filled(harness: Harness) -> None:
    h = harness
    h.contacts.write(
        "desk.vcf",
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:desk-1\r\nFN:\r\nN:;;;;\r\nNOTE:parking at the back\r\n"
        "EMAIL:desk@dentist.example\r\nTEL:+44 1234\r\nEND:VCARD\r\n",
    )
    h.contacts.write(
        "mum.vcf",
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:mum-1\r\nFN:Mum\r\nN:;;;;\r\n"
        "EMAIL:mum@family.example\r\nEND:VCARD\r\n",
    )
    desk = h.mail.deliver("desk@dentist.example", name="Dentist Ltd")
    mum = h.mail.deliver("mum@family.example", name="Jane Doe")
    label(h, desk, "@ToPaperTrail")
    label(h, mum, "@ToPerson")

    result = await h.triage.run_pass()

    assert result.senders_triaged == 2
    card = vcard.parse(h.contacts.contact_text("desk@dentist.example") or "")
    assert card.fn.value == "Dentist Ltd"  # was empty: filled
    assert card.org.value == ["Dentist Ltd"]
    assert card.note.value == "parking at the back"  # the user's data kept
    assert card.tel.value == "+44 1234"
    assert card.uid.value == "desk-1"
    card = vcard.parse(h.contacts.contact_text("mum@family.example") or "")
    assert card.fn.value == "Mum"  # never overwritten
    assert (card.n.value.given, card.n.value.family) == ("Jane", "Doe")  # was empty
    assert h.contacts.groups_of_address("mum@family.example") == {"Person", "Imbox"}
    assert len([c for c in h.contacts.cards if c.endswith(".vcf")]) == 7  # 5 groups + 2


async def test_a_thousand_labelled_emails_cost_one_extra_scan_request(
    sandbox: FaultySandbox,
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        h = await open_harness(sandbox, http, ContactsBackend.JMAP)
        await _label_a_thousand(h)


async def _label_a_thousand(h: Harness) -> None:
    for i in range(100):
        for _ in range(10):
            label(h, h.mail.deliver(f"all{i}@batch.example"), "@ToFeed")
    before = h.sandbox.total_requests()
    result = await h.triage.run_pass()
    assert (result.senders_triaged, result.emails_refiled) == (100, 1000)
    assert not h.mail.emails_in("@ToFeed")
    # The scan's first page (500, the stand-in's maxObjectsInGet) and the rest
    # in one more request; then the same 6 as for any pass.
    assert h.sandbox.total_requests() - before == 2 + 6


async def test_a_pass_of_many_senders_keeps_every_filter_modest(harness: Harness) -> None:
    h = harness
    widest: list[int] = []

    def measure(name: str, args: dict[str, object]) -> None:
        flt = args.get("filter")
        if isinstance(flt, dict) and flt.get("operator") == "OR":
            widest.append(len(flt["conditions"]))

    h.mail.before_method = measure
    ids = [h.mail.deliver(f"many{n}@x.example") for n in range(250)]
    for eid in ids:
        label(h, eid, "@ToPaperTrail")

    result = await h.triage.run_pass()

    assert (result.senders_triaged, result.failures) == (250, 0)
    assert all(h.mail.mailbox_names(eid) == {"Paper Trail"} for eid in ids)
    assert max(widest) <= 100  # the senders' mail and contacts asked 100 at a time


# -- a server answer of the wrong shape fails one sender, never the pass ------------------


def refuse_for(h: Harness, victim: str, shape: object) -> None:
    """The server answers the victim's re-filing in ``shape``, everything else normally."""
    victims = set(from_sender(h, victim))

    def mangle(name: str, args: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        if name != "Email/set" or not victims & set(args.get("update") or {}):
            return result
        updated = {k: v for k, v in (result.get("updated") or {}).items() if k not in victims}
        hit = sorted(victims & set(args["update"]))
        if shape == "list":
            return {**result, "updated": updated, "notUpdated": hit}
        if shape == "silent":
            return {**result, "updated": updated, "notUpdated": None}
        return {**result, "updated": updated, "notUpdated": {k: shape for k in hit}}

    h.mail.after_method = mangle


@pytest.mark.parametrize("shape", ["list", "silent", {"description": "no type"}, "oops"])
async def test_a_set_answer_of_the_wrong_shape_fails_one_sender(
    harness: Harness, shape: object
) -> None:
    h = harness
    odd, fine = h.mail.deliver("odd@x.example"), h.mail.deliver("fine@x.example")
    label(h, odd, "@ToFeed")
    label(h, fine, "@ToFeed")
    refuse_for(h, "odd@x.example", shape)

    result = await h.triage.run_pass()

    assert result.senders == [("fine@x.example", "Feed")]
    assert result.failures == 1
    assert h.mail.mailbox_names(fine) == {"Feed"}
    assert "@ToFeed" in h.mail.mailbox_names(odd)  # kept: retried next pass
    h.mail.after_method = None
    again = await h.triage.run_pass()
    assert again.senders == [("odd@x.example", "Feed")]


async def test_records_the_server_throttles_are_sent_again_after_a_pause(
    harness: Harness,
) -> None:
    h = harness
    ids = [h.mail.deliver(f"busy{n}@x.example") for n in range(3)]
    for eid in ids:
        label(h, eid, "@ToJail")
    # Every record refused once or twice (not applied), then let through.
    h.mail.throttle = {"ContactCard/set": 1, "Email/set": 2}
    h.sleeps.waits.clear()
    result = await h.triage.run_pass()
    assert (result.senders_triaged, result.failures) == (3, 0)
    assert all(h.mail.mailbox_names(eid) == {"Jail"} for eid in ids)
    assert 1.0 in h.sleeps.waits
