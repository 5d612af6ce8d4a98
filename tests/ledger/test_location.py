from __future__ import annotations

from pathlib import Path

from mailroom.ledger.location import ledger_path


def test_the_setting_wins() -> None:
    env = {"MAILROOM_STATE_DIR": "/srv/m", "STATE_DIRECTORY": "/var/lib/mailroom"}
    assert ledger_path(env) == Path("/srv/m/mailroom.db")


def test_systemd_state_directory_first_of_several() -> None:
    env = {"STATE_DIRECTORY": "/var/lib/mailroom:/var/lib/other", "XDG_STATE_HOME": "/x"}
    assert ledger_path(env) == Path("/var/lib/mailroom/mailroom.db")


def test_xdg_state_home_then_home() -> None:
    assert ledger_path({"XDG_STATE_HOME": "/x/state"}) == Path("/x/state/mailroom/mailroom.db")
    # A relative XDG value is ignored, as the XDG spec says.
    assert ledger_path({"XDG_STATE_HOME": "rel", "HOME": "/home/u"}) == Path(
        "/home/u/.local/state/mailroom/mailroom.db"
    )
