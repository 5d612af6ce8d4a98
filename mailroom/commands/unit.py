"""The systemd units, shipped in the package; ``mailroom systemd-unit`` prints them.

Type=notify: READY=1 as soon as the settings are valid and /health is up,
STATUS= on every change, WATCHDOG=1 from the loop that does the work (only
while triage is alive), STOPPING=1 on the way out. Exit status 2 (bad
settings, an account that needs `mailroom setup`) is not restarted: only a
person can fix it. The ledger lives in StateDirectory= (with DynamicUser=,
systemd keeps it under /var/lib/private and hands it to whichever user the
service runs as).

Three shapes: the system service (one account, ``mailroom.service``), a
template with one instance per account (``mailroom@.service``, a family
plan), and a user service (``systemctl --user``, no root).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path, PurePosixPath

from mailroom.errors import ConfigError

# Measured RSS is about 40 MB, idle or under a flood: the cap leaves room for
# a large pass and stops a runaway long before it hurts the machine.
MEMORY_MAX = "200M"
# A system service (DynamicUser=, ProtectHome=) cannot reach a command here.
HOME_TREES = (PurePosixPath("/home"), PurePosixPath("/root"), PurePosixPath("/run/user"))


class UnitKind(StrEnum):
    SYSTEM = "system"
    TEMPLATE = "template"
    USER = "user"


class UnitError(ConfigError):
    """The unit asked for cannot work from where Mailroom is installed."""


RUN = """\
Type=notify
NotifyAccess=main
ExecStart={exec_start} run
WatchdogSec=120
# A pass may take up to its 120 s deadline and is finished before exiting.
TimeoutStopSec=150
Restart=on-failure
RestartSec=10
RestartPreventExitStatus=2
MemoryMax={memory_max}
"""

HARDENING = """\
DynamicUser=yes
UMask=0077
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateUsers=yes
PrivateIPC=yes
DevicePolicy=closed
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
"""

SYSTEM = """\
[Unit]
Description=Mailroom: push-driven Screener triage for Fastmail and JMAP servers
Wants=network-online.target
After=network-online.target

[Service]
{run}# Non-secret settings (MAILROOM_*), one per line; see `mailroom check`.
EnvironmentFile=-/etc/mailroom/mailroom.env
# Secrets never go in the environment: systemd hands them over as files.
LoadCredential=jmap-token:/etc/mailroom/jmap-token
# Only for contacts over CardDAV (a server without JMAP Contacts): uncomment,
# and set MAILROOM_CARDDAV_USERNAME in the environment file.
#LoadCredential=carddav-password:/etc/mailroom/carddav-password
# The ledger of decisions: /var/lib/mailroom/mailroom.db.
StateDirectory=mailroom

{hardening}
[Install]
WantedBy=multi-user.target
"""

TEMPLATE = """\
[Unit]
Description=Mailroom for %i: push-driven Screener triage for Fastmail and JMAP servers
Wants=network-online.target
After=network-online.target

[Service]
{run}# One instance per account: /etc/mailroom/%i.env holds that account's
# MAILROOM_* settings (each instance its own MAILROOM_HTTP_PORT).
EnvironmentFile=/etc/mailroom/%i.env
LoadCredential=jmap-token:/etc/mailroom/%i.jmap-token
# Only for contacts over CardDAV: uncomment, and set MAILROOM_CARDDAV_USERNAME.
#LoadCredential=carddav-password:/etc/mailroom/%i.carddav-password
# Each account its own ledger: /var/lib/mailroom/%i/mailroom.db.
StateDirectory=mailroom/%i

{hardening}
[Install]
WantedBy=multi-user.target
"""

USER = """\
[Unit]
Description=Mailroom: push-driven Screener triage for Fastmail and JMAP servers

[Service]
{run}# Runs as you: settings in ~/.config/mailroom/mailroom.env, among them
# MAILROOM_JMAP_TOKEN_FILE=%h/.config/mailroom/jmap-token (a file only you read).
EnvironmentFile=-%h/.config/mailroom/mailroom.env
# The ledger of decisions: ~/.local/state/mailroom/mailroom.db.
StateDirectory=mailroom
UMask=0077
NoNewPrivileges=yes
LockPersonality=yes
RestrictRealtime=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native

[Install]
WantedBy=default.target
"""


def exec_start() -> str:
    """The installed ``mailroom`` command beside this Python, else ``python -m``."""
    script = Path(sys.executable).with_name("mailroom")
    if script.is_file():
        return str(script)
    return f"{sys.executable} -m mailroom"


def in_home(command: str) -> bool:
    path = PurePosixPath(command.split()[0])
    return any(path.is_relative_to(tree) for tree in HOME_TREES)


def render_unit(command: str | None = None, kind: UnitKind = UnitKind.SYSTEM) -> str:
    """The unit text; raises UnitError when a system unit could not run ``command``."""
    command = command or exec_start()
    if kind is not UnitKind.USER and in_home(command):
        raise UnitError(
            f"mailroom is installed at {command.split()[0]}, inside a home directory: a "
            "system service (DynamicUser=, ProtectHome=yes) cannot reach it. Install it "
            "for the whole machine (`sudo pipx install --global mailroom`, or a venv in "
            "/opt/mailroom), or run it as yourself: `mailroom systemd-unit --user`."
        )
    run = RUN.format(exec_start=command, memory_max=MEMORY_MAX)
    text = {UnitKind.SYSTEM: SYSTEM, UnitKind.TEMPLATE: TEMPLATE, UnitKind.USER: USER}[kind]
    return text.format(run=run, hardening=HARDENING)
