"""Who may use the pages, read from the settings (pure).

The pages change the user's mail, so they are off until a login is set up:
a password hash (``MAILROOM_WEB_PASSWORD_FILE``, from ``mailroom
web-password``) or a reverse proxy's authentication header
(``MAILROOM_WEB_AUTH_HEADER``) believed only from the proxies listed in
``MAILROOM_WEB_TRUSTED_PROXIES``. A setting that cannot be honoured stops the
service at start, naming the fix; so does listening beyond this machine with
no login (``MAILROOM_WEB=off`` keeps only /health, /livez and /metrics there).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import argon2

from mailroom.core.secret import Secret

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")  # an HTTP field name (RFC 9110 §5.1)
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
HOW_TO_LOG_IN = (
    "set MAILROOM_WEB_PASSWORD_FILE to a file holding the line `mailroom web-password` "
    "prints, or MAILROOM_WEB_AUTH_HEADER with MAILROOM_WEB_TRUSTED_PROXIES behind a "
    "reverse proxy that logs users in"
)


@dataclass(frozen=True)
class WebAccess:
    pages: bool  # MAILROOM_WEB: off serves only the monitors' endpoints
    password_hash: Secret | None  # the argon2 line; None: no password login
    auth_header: str | None  # the proxy's header naming the user, lower case
    trusted_proxies: tuple[IpNetwork, ...]
    public_url: str | None  # scheme://host[:port]; None: http://<listen address>:<port>

    @property
    def login_configured(self) -> bool:
        return self.password_hash is not None or self.auth_header is not None

    @property
    def enabled(self) -> bool:
        """Whether the pages that show and change the account are served."""
        return self.pages and self.login_configured

    def secure_cookies(self, public_origin: str) -> bool:
        return public_origin.startswith("https://")

    def proxy_trusted(self, client: str | None) -> bool:
        if client is None or not self.trusted_proxies:
            return False
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self.trusted_proxies)


def public_host(access: WebAccess) -> tuple[str, ...]:
    """The host name in ``MAILROOM_WEB_PUBLIC_URL``, if set."""
    if access.public_url is None:
        return ()
    host = urlsplit(access.public_url).hostname
    return (host,) if host else ()


def is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def hash_problem(line: str) -> str | None:
    """Why ``line`` is not a password hash this service can check (None: it is)."""
    if not line.startswith("$argon2"):
        return "is not a password hash: put there the one line `mailroom web-password` prints"
    try:
        argon2.extract_parameters(line)
    except argon2.exceptions.InvalidHashError:
        return "is not a whole argon2 hash (cut short?): run `mailroom web-password` again"
    return None


def header_problem(name: str) -> str | None:
    if not _TOKEN.fullmatch(name):
        return f"expected an HTTP header name such as Remote-User, got {name!r}"
    if name.lower() in {"host", "cookie", "authorization", "origin", "content-type"}:
        return f"{name!r} is not a header a proxy sets for the user it logged in"
    return None


def networks(text: str) -> tuple[tuple[IpNetwork, ...], str | None]:
    """Comma-separated addresses or networks (``10.0.0.5``, ``192.168.1.0/24``)."""
    out: list[IpNetwork] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            return (), f"expected IP addresses or networks, comma-separated; not one: {item!r}"
    return tuple(out), None


def origin_problem(url: str) -> str | None:
    """Why ``url`` is not an address users open the pages at (None: it is)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return (
            f"expected an http:// or https:// address such as https://mailroom.example, got {url!r}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return (
            f"expected just scheme, host and port (the pages are served at the root), got {url!r}"
        )
    try:
        _ = parts.port
    except ValueError:
        return f"the port in {url!r} is not a port number"
    return None


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` lower case, without a default port (as browsers send Origin)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def beyond_loopback_problem(access: WebAccess, http_host: str) -> str | None:
    if access.pages and not access.login_configured and not is_loopback(http_host):
        return (
            f"MAILROOM_HTTP_HOST={http_host} listens beyond this machine, but the pages "
            f"(which show senders and change mail) have no login: {HOW_TO_LOG_IN}; or set "
            "MAILROOM_WEB=off to serve only /health, /livez and /metrics there"
        )
    return None
