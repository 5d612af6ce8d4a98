"""sd_notify without libsystemd: one datagram of KEY=VALUE lines.

Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping

from mailroom.core.redact import scrub


def notify_message(fields: Mapping[str, str]) -> bytes:
    # STATUS is one line; a newline inside would start a bogus field.
    text = "\n".join(f"{k}={' '.join(str(v).splitlines())}" for k, v in fields.items())
    return scrub(text).encode()


def socket_address(value: str) -> str:
    # "@name" is Linux's abstract namespace: a leading NUL byte.
    return "\0" + value[1:] if value.startswith("@") else value


class SystemdNotifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._address = socket_address(env["NOTIFY_SOCKET"]) if env.get("NOTIFY_SOCKET") else None
        usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, **fields: str) -> None:
        if self._address is None:
            return
        with (
            contextlib.suppress(OSError),
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
        ):
            sock.sendto(notify_message(fields), self._address)

    def ready(self, status: str) -> None:
        self.notify(READY="1", STATUS=status)

    def status(self, text: str) -> None:
        self.notify(STATUS=text)

    def watchdog(self) -> None:
        self.notify(WATCHDOG="1")

    def stopping(self) -> None:
        self.notify(STOPPING="1", STATUS="stopping")
