"""A request that got no HTTP answer, said in words a person can act on.

httpx names what happened by class (``ConnectError: All connection attempts
failed``); a user needs where it went and what to check. The address is the
request's origin (never its query, which could carry a credential).
"""

from __future__ import annotations

import httpx


def describe_transport_error(exc: BaseException) -> str:
    where = _origin(exc)
    at = f" at {where}" if where else ""
    to = f" to {where}" if where else ""
    detail = str(exc).strip()
    if isinstance(exc, httpx.ConnectTimeout):
        return f"no connection{to} in time: check the address and that this machine reaches it"
    if isinstance(exc, httpx.ConnectError):
        lowered = detail.lower()
        if "name or service not known" in lowered or "nodename nor servname" in lowered:
            return f"the host{at} cannot be found (DNS): check the address"
        if "certificate" in lowered or "ssl" in lowered or "tls" in lowered:
            return f"the TLS handshake{to} failed ({detail}): check the address and the clock"
        return (
            f"nothing answers{at} (connection refused or no route): check the address "
            "and that the server is up and reachable from this machine"
        )
    if isinstance(exc, httpx.TimeoutException):
        return f"the server{at} stopped answering in time"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server{at} closed the connection or broke HTTP ({detail or 'no detail'})"
    if isinstance(exc, httpx.ProxyError):
        return f"the proxy refused the connection{to} ({detail or 'no detail'})"
    if isinstance(exc, httpx.TransportError):
        return f"the connection{to} failed ({detail or type(exc).__name__})"
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _origin(exc: BaseException) -> str:
    try:
        request = exc.request if isinstance(exc, httpx.RequestError) else None
    except RuntimeError:  # httpx raises when the error was made without a request
        request = None
    if request is None:
        return ""
    url = request.url
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"
