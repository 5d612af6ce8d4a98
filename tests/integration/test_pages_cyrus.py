"""The web pages in a real browser against both Cyrus builds: the same walk
as against the stand-in (tests/web/walk.py), the account read from Cyrus."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

from mailroom.web.auth import hash_password
from tests.integration.cyrus import Cyrus
from tests.integration.test_cyrus import groups_of, start_mailroom
from tests.process import wait_until
from tests.web.walk import CHROMEDRIVER, PASSWORD, Account, Senders, browser, decide_and_take_back

HOSTILE = "<img src=x onerror=alert(1)>"  # quoted in the From header, as a mailer would


@pytest.mark.skipif(
    CHROMEDRIVER is None and not os.environ.get("CI"),
    reason="chromium-driver not installed (Debian: apt install chromium-driver)",
)
def test_deciding_and_taking_back_in_a_browser_on_cyrus(any_cyrus: Cyrus, tmp_path: Path) -> None:
    cyrus = any_cyrus
    tag = uuid.uuid4().hex[:8]
    s = Senders(
        f"ann@{tag}-a.example",
        f"billing@{tag}-b.example",
        f"news@{tag}-b.example",
        f"eve@{tag}-evil.example",
        hostile_name=HOSTILE,
        list_id=f"users-{tag}.lists.example",
        list_poster=f"someone@{tag}-lists.example",
    )
    cyrus.ensure_mailbox("Screener")
    cyrus.deliver(s.person, "Ann Example", "Lunch on Friday?")
    cyrus.deliver(s.billing, "B Corp Billing", "Invoice 2026-11")
    cyrus.deliver(s.billing, "B Corp Billing", "Invoice 2026-12")
    cyrus.deliver(s.colleague, "B Corp News", "What is new at B")
    cyrus.deliver(s.hostile, f'"{HOSTILE}"', "Hello")
    for n in (1, 2):
        cyrus.deliver(s.list_poster, "Someone", f"Post {n}", list_id=f"Users <{s.list_id}>")
    wanted = {s.person: 1, s.billing: 2, s.colleague: 1, s.hostile: 1, s.list_poster: 2}
    found = cyrus.wait_for_mail_of(wanted)
    assert all(found.values()), found

    def boxes(sender: str) -> set[str]:
        return set().union(*cyrus.mail_of([sender])[sender].values())

    def groups(sender: str) -> set[str]:
        try:
            return asyncio.run(groups_of(cyrus, sender))
        except KeyError:  # no contact at all (an undo deleted the one Mailroom made)
            return set()

    env = {"MAILROOM_WEB_PASSWORD": hash_password(PASSWORD), "MAILROOM_DEBOUNCE_SECONDS": "60"}
    with start_mailroom(cyrus, **env) as proc:
        assert wait_until(lambda: proc.health()[1].get("status") == "pass", 60), proc.log
        driver = browser(1100, 1300)
        try:
            decide_and_take_back(driver, proc.base, Account(boxes, groups), s, tmp_path, False)
        finally:
            driver.quit()
