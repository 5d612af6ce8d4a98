"""Which ``Host`` the status page and /health answer: this machine's only (pure).

A page in the user's browser can point a name it controls at 127.0.0.1 (DNS
rebinding) and read what the status page shows, sender addresses included.
Such a request still names the attacker's host, so only requests naming the
address the server listens on, ``localhost``, or a name the user allowed
are answered; a server listening on every address also answers any IP
literal (rebinding needs a name). The rest get 421 and no body.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104  (what a wildcard bind looks like)
ALWAYS = frozenset({"localhost"})


def host_name(header: str) -> str:
    """The name in a Host header, without its port, lower case (IPv6 unbracketed)."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(header: str | None, listen_host: str, extra: Iterable[str] = ()) -> bool:
    """Whether a request with this Host header may be answered.

    No Host at all (HTTP/1.0 from a monitoring script) is not a browser.
    """
    if header is None:
        return True
    name = host_name(header)
    listen = host_name(listen_host)
    allowed = {*ALWAYS, listen, *(host_name(e) for e in extra)}
    if name in allowed:
        return True
    return listen in WILDCARDS and _is_ip(name)
