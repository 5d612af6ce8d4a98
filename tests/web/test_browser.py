"""The pages in a real browser against the stand-in, on a desktop and on a
phone (the walk: tests/web/walk.py; against Cyrus: tests/integration).
``SCREENSHOTS_TO=docs`` renews the pictures in docs/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailroom.web.auth import hash_password
from tests.faults import FaultySandbox
from tests.process import MailroomProcess, wait_until
from tests.web.walk import (
    CHROMEDRIVER,
    EVIL,
    PASSWORD,
    Account,
    Senders,
    browser,
    decide_and_take_back,
    on_a_phone,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMEDRIVER is None and not os.environ.get("CI"),
        reason="chromium-driver not installed (Debian: apt install chromium-driver)",
    ),
]
SENDERS = Senders(
    "ann@a.example",
    "billing@b.example",
    "news@b.example",
    "eve@evil.example",
    list_id="users.lists.example",
    list_poster="someone@lists.example",
)


@pytest.fixture
def running() -> Iterator[tuple[Account, MailroomProcess]]:
    with FaultySandbox() as sb:
        mail = sb.mail
        mail.deliver(
            SENDERS.person,
            name="Ann Example",
            subject="Lunch on Friday?",
            preview="Are you free at noon? The place on the corner does a",
        )
        mail.deliver(SENDERS.billing, name="B Corp Billing", subject="Invoice 2026-11")
        mail.deliver(
            SENDERS.billing,
            name="B Corp Billing",
            subject="Invoice 2026-12",
            preview="Your invoice for December is attached.",
        )
        mail.deliver(SENDERS.colleague, name="B Corp News", subject="What is new at B")
        mail.deliver(SENDERS.hostile, name=EVIL, subject="\u202eexe.gnp")
        for n in (1, 2):
            mail.deliver(
                SENDERS.list_poster,
                name="Someone",
                subject=f"Re: the release, part {n}",
                headers=[("List-Id", f"Mailroom users <{SENDERS.list_id}>")],
            )
        env = {
            **sb.env("jmap"),
            "MAILROOM_WEB_PASSWORD": hash_password(PASSWORD),
            "MAILROOM_DEBOUNCE_SECONDS": "60",
        }

        def boxes(sender: str) -> set[str]:
            with mail.lock:
                ids = [e.id for e in mail.emails.values() if e.from_[0]["email"] == sender]
            return set().union(*(mail.mailbox_names(i) for i in ids))

        with MailroomProcess(env) as proc:
            assert wait_until(lambda: proc.health()[1].get("status") == "pass", 60), proc.log
            yield Account(boxes, sb.contacts.groups_of_address), proc


def test_deciding_and_taking_back_in_a_browser(
    running: tuple[Account, MailroomProcess], tmp_path: Path
) -> None:
    account, proc = running
    driver = browser(1100, 1300)
    try:
        decide_and_take_back(driver, proc.base, account, SENDERS, tmp_path)
    finally:
        driver.quit()


def test_on_a_phone(running: tuple[Account, MailroomProcess], tmp_path: Path) -> None:
    account, proc = running
    driver = browser(390, 844)
    try:
        # The whole walk on a phone's screen, then what a phone needs besides.
        decide_and_take_back(driver, proc.base, account, SENDERS, tmp_path, shots=False)
        driver.delete_all_cookies()
        on_a_phone(driver, proc.base, account, SENDERS, tmp_path)
    finally:
        driver.quit()
