"""Whole-domain decisions: from the phone, from the command line, and what they refuse."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mailroom.commands.triage import run_triage
from mailroom.commands.undo import run_undo
from mailroom.ledger.model import DecisionKind, Intent
from mailroom.settings import load_settings
from tests.conftest import Harness
from tests.triage.test_pass_ledger import with_ledger

pytestmark = pytest.mark.anyio


def env(h: Harness, state: Path) -> dict[str, str]:
    return {
        **h.sandbox.env(h.backend.value),
        "MAILROOM_CONTACTS": h.backend.value,
        "MAILROOM_STATE_DIR": str(state),
    }


async def triage_cmd(
    h: Harness, state: Path, *args: str, apply: bool = True, force: bool = False
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    subject, category = args
    code = await run_triage(
        load_settings(env(h, state)), subject, category, apply=apply, out=out, err=err, force=force
    )
    return code, out.getvalue(), err.getvalue()


async def undo_cmd(h: Harness, state: Path, subject: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    code = await run_undo(load_settings(env(h, state)), subject, apply=True, out=out, err=err)
    assert code == 0, err.getvalue()
    return out.getvalue()


async def test_a_label_with_whole_domain_decides_for_the_domain_and_later_senders(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "mailroom.db")
    labelled = h.mail.deliver("news@acme.example", name="Acme News")
    waiting = h.mail.deliver("billing@mail.acme.example", name="Acme Billing")
    other = h.mail.deliver("someone@elsewhere.example")
    lookalike = h.mail.deliver("x@notacme.example")
    h.mail.set_mailboxes(labelled, {"Screener", "@ToFeed", "@WholeDomain"})

    await triage.run_pass()

    assert h.mail.mailbox_names(labelled) == {"Feed"}  # both labels off
    assert h.mail.mailbox_names(waiting) == {"Feed"}  # a subdomain's sender, now
    assert h.mail.mailbox_names(other) == {"Screener"}
    assert h.mail.mailbox_names(lookalike) == {"Screener"}
    assert h.contacts.groups_of_address("billing@mail.acme.example") == {"Feed"}
    rules = ledger.domain_rules()
    assert list(rules) == ["acme.example"] and rules["acme.example"].intent.category == "Feed"

    later = h.mail.deliver("new.person@acme.example", name="New")  # arrives later
    await triage.run_pass()
    assert h.mail.mailbox_names(later) == {"Feed"}
    assert h.contacts.groups_of_address("new.person@acme.example") == {"Feed"}
    (latest,) = [d for d in ledger.history() if d.intent.subject == "new.person@acme.example"]
    assert latest.intent.rule == rules["acme.example"].id
    assert len([d for d in ledger.history() if d.intent.subject == "@acme.example"]) == 1


async def test_a_single_address_wins_over_its_domain(harness: Harness, tmp_path: Path) -> None:
    h = harness
    triage, _ = with_ledger(h, tmp_path / "mailroom.db")
    own_mind = h.mail.deliver("boss@acme.example")
    h.mail.set_mailboxes(own_mind, {"Screener", "@ToImbox"})
    await triage.run_pass()
    code, _, err = await triage_cmd(h, tmp_path, "@acme.example", "Feed")
    assert code == 0, err
    again = h.mail.deliver("boss@acme.example")  # a rule would file it: it must not
    h.mail.set_mailboxes(again, {"Screener"})
    await triage.run_pass()
    assert h.contacts.groups_of_address("boss@acme.example") == {"Imbox"}
    assert h.mail.mailbox_names(again) == {"Screener"}


async def test_triage_at_domain_from_the_command_line_and_undo_it(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "mailroom.db")
    ids = {s: h.mail.deliver(s) for s in ("a@shop.example", "b@eu.shop.example")}
    code, out, _ = await triage_cmd(h, tmp_path, "@Shop.Example", "Paper Trail", apply=False)
    assert code == 0 and "would decide @shop.example" in out and "2 senders" in out
    assert "would triage a@shop.example into Paper Trail" in out
    assert all(h.mail.mailbox_names(i) == {"Screener"} for i in ids.values())  # dry

    code, out, err = await triage_cmd(h, tmp_path, "@shop.example", "Paper Trail")
    assert code == 0, err
    assert all(h.mail.mailbox_names(i) == {"Paper Trail"} for i in ids.values())
    later = h.mail.deliver("c@shop.example")
    await triage.run_pass()
    assert h.mail.mailbox_names(later) == {"Paper Trail"}

    out = await undo_cmd(h, tmp_path, "@shop.example")
    assert "undo: @shop.example back from Paper Trail to no rule" in out
    assert "done: @shop.example is no longer decided as Paper Trail" in out
    for sender in ("a@shop.example", "b@eu.shop.example", "c@shop.example"):
        assert h.contacts.contact_uid(sender) is None, sender  # Mailroom made them
    assert all(h.mail.mailbox_names(i) == {"Screener"} for i in [*ids.values(), later])
    assert ledger.domain_rules() == {}
    newest = h.mail.deliver("d@shop.example")
    await triage.run_pass()
    assert h.mail.mailbox_names(newest) == {"Screener"}  # no rule any more
    assert h.mail.mailbox_names(later) == {"Screener"}  # not re-triaged either


@pytest.mark.parametrize(
    ("domain", "force", "why"),
    [
        ("@gmail.com", False, "gmail.com is a shared mail provider"),
        ("@co.uk", True, "co.uk is a public suffix"),
        ("@example", False, "example is a public suffix"),
        ("@not a domain", False, "is not a domain name"),
    ],
)
async def test_domains_refused(
    harness: Harness, tmp_path: Path, domain: str, force: bool, why: str
) -> None:
    code, _, err = await triage_cmd(harness, tmp_path, domain, "Feed", force=force)
    assert code == 2 and why in err
    assert not (tmp_path / "mailroom.db").exists()


async def test_a_provider_is_decided_with_force(harness: Harness, tmp_path: Path) -> None:
    h = harness
    email = h.mail.deliver("pal@gmail.com")
    code, out, err = await triage_cmd(h, tmp_path, "@gmail.com", "Jail", force=True)
    assert code == 0, err
    assert "decided @gmail.com (and its subdomains) into Jail" in out
    assert h.mail.mailbox_names(email) == {"Jail"}


async def test_a_whole_domain_label_on_a_provider_gets_the_error_label(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "mailroom.db")
    email = h.mail.deliver("friend@gmail.com")
    h.mail.set_mailboxes(email, {"Screener", "@ToFeed", "@WholeDomain"})
    result = await triage.run_pass()
    assert result.senders_triaged == 0
    assert "@MailroomError" in h.mail.mailbox_names(email)
    assert ledger.domain_rules() == {}


async def test_rules_cost_one_query_and_nothing_without_rules(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    triage, _ = with_ledger(h, tmp_path / "mailroom.db")
    before = h.sandbox.total_requests()
    await triage.run_pass()
    assert h.sandbox.total_requests() - before == 1  # no rules: the scan alone
    for n in range(30):  # thirty rules, one query
        await triage_cmd(h, tmp_path, f"@d{n}.example", "Feed")
    before = h.sandbox.total_requests()
    await triage.run_pass()
    assert h.sandbox.total_requests() - before == 2  # the scan, and one rules query


async def test_a_rule_for_a_category_no_longer_configured_waits(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    triage, ledger = with_ledger(h, tmp_path / "mailroom.db")
    (rule,) = ledger.begin([Intent("@old.example", DecisionKind.TRIAGE, "Gone", "cli")])
    ledger.finish([rule])  # made when the settings had a category "Gone"
    email = h.mail.deliver("x@old.example")
    result = await triage.run_pass()  # never an exception: the rule waits, named
    assert (result.senders_triaged, result.failures) == (0, 0)
    assert h.mail.mailbox_names(email) == {"Screener"}
    assert "domain rules for a category the settings no longer have" in caplog.text
