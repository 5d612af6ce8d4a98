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


# Where the system units keep their ledgers (StateDirectory=mailroom, and
# mailroom/<instance> for the template; /var/lib/private behind it with
# DynamicUser=, readable by root only).
SYSTEM_STATE = Path("/var/lib/mailroom")


def service_ledgers(env: Mapping[str, str], root: Path | None = None) -> list[Path]:
    """The installed system service's ledgers, when this process's own ledger is
    the default one of a shell (no MAILROOM_STATE_DIR, not under systemd) and
    does not exist: a command run there would otherwise find an empty record,
    or start a second one, while the service keeps the real one elsewhere."""
    if env.get("MAILROOM_STATE_DIR", "").strip() or env.get("STATE_DIRECTORY", "").strip():
        return []
    if _exists(ledger_path(env)):
        return []
    root = root or SYSTEM_STATE
    found = []
    for directory in (root, *_children(root)):
        if _exists(directory / FILE_NAME):
            found.append(directory / FILE_NAME)
    return found[:10]


def elsewhere_hint(env: Mapping[str, str], root: Path | None = None) -> str | None:
    """What to tell the person when the system service keeps the ledger elsewhere."""
    found = service_ledgers(env, root)
    if not found:
        return None
    where = found[0].parent
    return (
        f"the installed service keeps its ledger at {found[0]}: run the command as root "
        f"(or the service's user) with MAILROOM_STATE_DIR={where}"
    )


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a directory we may not enter says nothing
        return False


def _children(root: Path) -> list[Path]:
    try:
        return sorted(p for p in root.iterdir() if p.is_dir())[:100]
    except OSError:
        return []
