"""The JMAP Session resource (RFC 8620 §2), parsed and checked.

Servers differ: Cyrus gives relative URLs and a templated ``eventSourceUrl``;
Fastmail gives absolute URLs and a plain one. Both become absolute URLs here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from mailroom.core.urls import insecure_reason
from mailroom.jmap.errors import JmapProtocolError

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
CONTACTS = "urn:ietf:params:jmap:contacts"  # RFC 9610
SUBMISSION = "urn:ietf:params:jmap:submission"  # RFC 8621 §7: Identity/get

_TEMPLATE_VARS = ("types", "closeafter", "ping")


@dataclass(frozen=True)
class Session:
    api_url: str
    event_source_url: str | None
    account_id: str
    state: str
    max_calls_in_request: int
    max_objects_in_get: int
    max_objects_in_set: int
    # The account holding contacts, when the server offers RFC 9610 for it.
    contacts_account_id: str | None = None
    # The account whose identities (the user's own addresses) can be read.
    submission_account_id: str | None = None
    username: str = ""

    def stream_url(self, *, types: str, closeafter: str, ping: int) -> str | None:
        """The EventSource URL with its parameters filled in, or None when absent."""
        if self.event_source_url is None:
            return None
        return fill_event_source_url(
            self.event_source_url, {"types": types, "closeafter": closeafter, "ping": str(ping)}
        )


def fill_event_source_url(url: str, values: Mapping[str, str]) -> str:
    """Fill an RFC 6570 level-1 template, or append the values as a query.

    Commas in ``types`` stay literal: they are legal in a query and every
    server seen decodes them either way.
    """
    if any("{" + name + "}" in url for name in _TEMPLATE_VARS):
        out = url
        for name in _TEMPLATE_VARS:
            out = out.replace("{" + name + "}", quote(values[name], safe=","))
        if "{" in out:
            raise JmapProtocolError(f"eventSourceUrl has an unknown template variable: {url!r}")
        return out
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in values]
    query.extend(values.items())
    return urlunsplit(parts._replace(query=urlencode(query, safe=",")))


def parse_session(data: Any, session_url: str) -> Session:
    """Check a session document and resolve its URLs against ``session_url``."""
    if not isinstance(data, dict):
        raise JmapProtocolError("session: expected a JSON object")
    capabilities = data.get("capabilities")
    if not isinstance(capabilities, dict) or CORE not in capabilities:
        raise JmapProtocolError(f"session: no {CORE} capability")
    core = capabilities[CORE]
    if not isinstance(core, dict):
        raise JmapProtocolError(f"session: {CORE} capability is not an object")
    if MAIL not in capabilities:
        raise JmapProtocolError(f"session: server does not offer {MAIL}")
    api_url = data.get("apiUrl")
    if not isinstance(api_url, str) or not api_url:
        raise JmapProtocolError("session: missing apiUrl")
    primary = data.get("primaryAccounts")
    account_id = primary.get(MAIL) if isinstance(primary, dict) else None
    if not isinstance(account_id, str) or not account_id:
        raise JmapProtocolError(f"session: no primary account for {MAIL}")
    event_source = data.get("eventSourceUrl")
    if event_source is not None and not isinstance(event_source, str):
        raise JmapProtocolError("session: eventSourceUrl is not a string")
    state = data.get("state")
    api_url = urljoin(session_url, api_url)
    event_source = urljoin(session_url, event_source) if event_source else None
    for name, url in (("apiUrl", api_url), ("eventSourceUrl", event_source)):
        problem = None if url is None else insecure_reason(url)
        if problem is not None:
            raise JmapProtocolError(f"session: refusing {name}: {problem}")
    contacts_account = primary.get(CONTACTS) if isinstance(primary, dict) else None
    if (
        CONTACTS not in capabilities
        or not isinstance(contacts_account, str)
        or not contacts_account
    ):
        contacts_account = None
    submission = primary.get(SUBMISSION) if isinstance(primary, dict) else None
    if SUBMISSION not in capabilities or not isinstance(submission, str) or not submission:
        submission = None
    username = data.get("username")
    return Session(
        contacts_account_id=contacts_account or None,
        submission_account_id=submission,
        username=username.strip()[:320] if isinstance(username, str) else "",
        api_url=api_url,
        event_source_url=event_source,
        account_id=account_id,
        state=state if isinstance(state, str) else "",
        max_calls_in_request=_limit(core, "maxCallsInRequest", 16),
        max_objects_in_get=_limit(core, "maxObjectsInGet", 500),
        max_objects_in_set=_limit(core, "maxObjectsInSet", 500),
    )


def _limit(core: dict[str, Any], key: str, default: int) -> int:
    value = core.get(key, default)
    # bool is an int in Python; a server sending true is broken, not "1".
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise JmapProtocolError(f"session: {key} must be a positive integer, got {value!r}")
    return value
