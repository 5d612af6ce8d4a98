"""Domains as whole-domain decisions see them (pure).

A rule for ``acme.example`` covers ``acme.example`` and every subdomain
(``news.acme.example``); the most specific rule covering a sender wins. The
domain a label decides for is the sender's registrable domain (one label
under its public suffix: ``mail.acme.co.uk`` -> ``acme.co.uk``), read from the
Public Suffix List that ``publicsuffixlist`` ships and keeps current, never a
hand-made list. Refused: a public suffix itself (``co.uk``: every company
under it), and the big shared mail providers below (everyone's address)
unless forced.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TypeVar

import idna
from publicsuffixlist import PublicSuffixList

# Shared mail providers: a rule for one of them would decide for millions of
# unrelated people. Short and documented (docs/decisions.md); --force overrides it.
PROVIDERS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "yahoo.com",
        "ymail.com",
        "aol.com",
        "fastmail.com",
        "fastmail.fm",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "mail.com",
        "yandex.ru",
        "zoho.com",
        "hey.com",
    }
)

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
T = TypeVar("T")


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def normal(domain: str) -> str:
    """Lower case, no leading "@" or trailing dot; IDNs as their ASCII form by
    IDNA 2008 with UTS 46 mapping, as mail and browsers read them today (not
    Python's IDNA 2003 codec, which turns ``faß.de`` into ``fass.de``, another
    domain). A name IDNA refuses stays as it is (``refusal`` then names it)."""
    text = domain.strip().removeprefix("@").rstrip(".")
    if not text:
        return ""
    try:
        return idna.encode(text, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return text.lower()


def domain_of(address: str) -> str:
    return normal(address.rpartition("@")[2])


def registrable(domain: str) -> str:
    """The domain a whole-domain label decides for: the registrable one, or the
    domain itself when it has none (a public suffix: refused later)."""
    return _psl().privatesuffix(domain) or domain


def is_domain_name(domain: str) -> bool:
    """``domain`` (as ``normal`` gives it) has the form of a host name."""
    labels = domain.split(".")
    # An all-digit last label is an IP address, never a registered domain.
    return len(domain) <= 253 and all(_LABEL.match(p) for p in labels) and not labels[-1].isdigit()


def refusal(domain: str, *, force: bool = False) -> str | None:
    """Why ``domain`` may not be decided as a whole (None: it may)."""
    if not is_domain_name(domain):
        return f"{domain!r} is not a domain name"
    if _psl().is_public(domain):
        return (
            f"{domain} is a public suffix: a decision for it would cover every "
            "domain registered under it"
        )
    provider = next((p for p in PROVIDERS if covers(p, domain)), None)
    if provider is not None and not force:
        return (
            f"{domain} is a shared mail provider ({provider}): a decision for it would "
            "cover everyone with an address there; decide for single senders, or "
            "use --force"
        )
    return None


def covers(domain: str, host: str) -> bool:
    """Whether a rule for ``domain`` covers ``host`` (itself or a subdomain)."""
    return host == domain or host.endswith("." + domain)


def rule_for(address: str, rules: Mapping[str, T]) -> tuple[str, T] | None:
    """The most specific rule covering the address's domain, if any."""
    host = domain_of(address)
    parts = host.split(".")
    for start in range(len(parts)):
        candidate = ".".join(parts[start:])
        if candidate in rules:
            return candidate, rules[candidate]
    return None
