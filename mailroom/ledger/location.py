"""Where the ledger lives when ``MAILROOM_STATE_DIR`` does not say.

Under systemd, ``StateDirectory=mailroom`` gives ``$STATE_DIRECTORY`` (it works
with ``DynamicUser=``); elsewhere the XDG base directory for state.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

FILE_NAME = "mailroom.db"


def state_dir(env: Mapping[str, str]) -> Path:
    if explicit := env.get("MAILROOM_STATE_DIR", "").strip():
        return Path(explicit).expanduser()
    if systemd := env.get("STATE_DIRECTORY", "").strip():
        return Path(systemd.split(":")[0])  # several are colon-separated: ours is first
    xdg = env.get("XDG_STATE_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():  # the XDG spec: a relative value is ignored
        return Path(xdg) / "mailroom"
    home = env.get("HOME", "").strip() or str(Path.home())
    return Path(home) / ".local" / "state" / "mailroom"


def ledger_path(env: Mapping[str, str]) -> Path:
    return state_dir(env) / FILE_NAME
