"""The people you write to, on both Cyrus builds: a reply from someone in your
Sent mail (To, Cc or Bcc) is triaged by the next pass into MAILROOM_TRUST_SENT's
category, recorded with trigger ``sent``; a stranger is not; undo takes it back
and it is not trusted again."""

from __future__ import annotations

import uuid

from tests.integration.cyrus import Cyrus
from tests.integration.test_cyrus import _mailroom, start_mailroom
from tests.integration.test_own_cyrus import _sent_mailbox
from tests.process import wait_until


def test_replies_from_people_you_wrote_to_skip_the_screener(any_cyrus: Cyrus) -> None:
    cyrus = any_cyrus
    tag = uuid.uuid4().hex[:8]
    me = f"{cyrus.env['CYRUS_USER']}@localhost"
    pal, carbon, blind = (f"{n}-{tag}@friends.example" for n in ("pal", "carbon", "blind"))
    stranger = f"stranger-{tag}@friends.example"
    cyrus.ensure_mailbox("Screener")
    sent = _sent_mailbox(cyrus)
    cyrus.append(me, "Me", "Lunch?", sent, to=pal)
    cyrus.append(me, "Me", "Plans", sent, to=f"team-{tag}@friends.example", cc=carbon, bcc=blind)
    for sender in (pal, carbon, blind, stranger):
        cyrus.deliver(sender, "Friend", f"Re: {tag}")
    cyrus.wait_for_mail_of([pal, carbon, blind, stranger])
    env = {"MAILROOM_TRUST_SENT": "Imbox", "MAILROOM_DEBOUNCE_SECONDS": "1"}
    with start_mailroom(cyrus, **env) as mr:
        assert wait_until(
            lambda: all(
                boxes == {"Imbox", "Inbox"}
                for s in (pal, carbon, blind)
                for boxes in cyrus.emails_from(s).values()
            ),
            60,
            step=0.3,
        ), mr.log
        assert all(b == {"Screener"} for b in cyrus.emails_from(stranger).values())
    history = _mailroom(cyrus, "history", pal)
    assert "sent" in history.stdout and "Imbox" in history.stdout, history.stdout
    undo = _mailroom(cyrus, "undo", pal, "--apply")
    assert undo.returncode == 0, undo.stdout + undo.stderr
    assert all(b == {"Screener"} for b in cyrus.emails_from(pal).values())
    # Taken back: not trusted again by the service's next start and passes.
    cyrus.deliver(pal, "Friend", f"Again {tag}")
    with start_mailroom(cyrus, **env) as mr:
        assert wait_until(lambda: "poll finished trigger=startup" in mr.log, 60), mr.log
        assert all(b == {"Screener"} for b in cyrus.emails_from(pal).values())
