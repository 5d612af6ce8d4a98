"""``mailroom history``: what the pass recorded, shown exactly."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailroom.commands.history import run_history
from mailroom.ledger.reading import Filter
from tests.conftest import Harness
from tests.triage.test_pass_ledger import with_ledger

pytestmark = pytest.mark.anyio


def history(path: Path, which: Filter, *, as_json: bool = False) -> str:
    out, err = io.StringIO(), io.StringIO()
    assert run_history(path, which, as_json=as_json, out=out, err=err) == 0, err.getvalue()
    return out.getvalue()


async def test_history_shows_each_decision_and_a_senders_whole_trail(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    path = tmp_path / "l.db"
    triage, _ = with_ledger(h, path)
    first = h.mail.deliver("pat@acme.example")
    second = h.mail.deliver("pat@acme.example")
    h.mail.set_mailboxes(first, {"Screener", "@ToFeed"})
    await triage.run_pass()
    h.mail.set_mailboxes(first, {"Feed", "@ToImbox"})
    other = h.mail.deliver("zed@mail.acme.example")
    h.mail.set_mailboxes(other, {"Screener", "@ToJail"})
    await triage.run_pass()

    everyone = history(path, Filter()).splitlines()
    assert len(everyone) == 3
    assert (
        "pat@acme.example  Imbox (was Feed)  fallback  done  2 emails moved"
        in everyone[0] + everyone[1]
    )
    assert everyone[2].endswith("pat@acme.example  Feed  fallback  done  2 emails moved")

    trail = history(path, Filter("PAT@acme.example")).splitlines()
    assert trail[0].endswith("Imbox (was Feed)  fallback  done  2 emails moved")
    assert "    contact: existing (uid " in trail[1]
    assert "    groups: joined Imbox; left Feed" in trail
    assert f"    email {first}: @ToImbox, Feed -> Imbox" in trail
    assert f"    email {second}: Feed -> Imbox" in trail
    older = trail.index(
        next(line for line in trail if line.endswith("Feed  fallback  done  2 emails moved"))
    )
    uid = h.contacts.contact_uid("pat@acme.example")
    assert trail[older + 1] == f"    contact: created by Mailroom (uid {uid})"
    assert f"    email {first}: @ToFeed, Screener -> Feed" in trail[older:]

    domain = history(path, Filter("@acme.example")).splitlines()
    assert [line.split("  ")[1] for line in domain] == [
        "zed@mail.acme.example",
        "pat@acme.example",
        "pat@acme.example",
    ]
    assert "zed@mail.acme.example  Jail" in history(path, Filter(category="Jail"))

    (record,) = json.loads(history(path, Filter("zed@mail.acme.example"), as_json=True))
    assert record["category"] == "Jail" and record["outcome"] == "done"
    assert record["emails"] == [{"id": other, "before": ["@ToJail", "Screener"], "after": ["Jail"]}]
    assert record["contact"]["created"] is True


def test_no_ledger_yet_is_said_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "none" / "mailroom.db"
    assert history(path, Filter()) == f"no decisions yet: no ledger at {path}\n"
    assert not path.parent.exists()


def test_the_command(tmp_path: Path) -> None:
    env = {**os.environ, "MAILROOM_STATE_DIR": str(tmp_path)}
    env.pop("MAILROOM_JMAP_TOKEN", None)  # history needs no credentials
    done = subprocess.run(
        [sys.executable, "-m", "mailroom", "history", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (
        0,
        f"no decisions yet: no ledger at {tmp_path / 'mailroom.db'}\n",
    )
    bad = subprocess.run(
        [sys.executable, "-m", "mailroom", "history", "--since", "last tuesday"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "--since: expected a date like 2026-11-30" in bad.stderr
    relative = subprocess.run(
        [sys.executable, "-m", "mailroom", "history"],
        env={**env, "MAILROOM_STATE_DIR": "state"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert relative.returncode == 2
    assert "MAILROOM_STATE_DIR: expected an absolute directory" in relative.stderr
