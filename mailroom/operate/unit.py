"""The systemd unit, shipped in the package; ``mailroom systemd-unit`` prints it.

Type=notify: READY=1 as soon as the settings are valid and /health is up,
STATUS= on every change, WATCHDOG=1 from the loop that does the work (only
while triage is alive), STOPPING=1 on the way out. Exit status 2 (bad
settings, an account that needs `mailroom setup`) is not restarted: only a
person can fix it. Nothing is kept on disk, so no StateDirectory=.
"""

from __future__ import annotations

import sys
from pathlib import Path

UNIT = """\
[Unit]
Description=Mailroom: push-driven Screener triage for Fastmail and JMAP servers
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start} run
# Non-secret settings (MAILROOM_*), one per line; see `mailroom check`.
EnvironmentFile=-/etc/mailroom/mailroom.env
# Secrets never go in the environment: systemd hands them over as files.
LoadCredential=jmap-token:/etc/mailroom/jmap-token
# Only for contacts over CardDAV (a server without JMAP Contacts): uncomment,
# and set MAILROOM_CARDDAV_USERNAME in the environment file.
#LoadCredential=carddav-password:/etc/mailroom/carddav-password
WatchdogSec=120
# A pass may take up to its 120 s deadline and is finished before exiting.
TimeoutStopSec=150
Restart=on-failure
RestartSec=10
RestartPreventExitStatus=2

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

[Install]
WantedBy=multi-user.target
"""


def exec_start() -> str:
    """The installed ``mailroom`` command beside this Python, else ``python -m``."""
    script = Path(sys.executable).with_name("mailroom")
    if script.is_file():
        return str(script)
    return f"{sys.executable} -m mailroom"


def render_unit(command: str | None = None) -> str:
    return UNIT.format(exec_start=command or exec_start())
