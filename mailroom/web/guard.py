"""What a request must show before it may change anything, and the headers
every answer carries (pure).

A change is a POST with the session's CSRF token (checked by the routes)
whose ``Origin`` is one the pages are served at; a browser that sends
``Sec-Fetch-Site`` must say ``same-origin``. A request with neither (or with
``Origin: null`` alone) comes from no page of ours and is refused too.
"""

from __future__ import annotations

from collections.abc import Mapping

from mailroom.web.access import origin_of

# No inline script or style anywhere: the pages' CSS and script are files of
# their own, so an injected <script> or style attribute would not run.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# The status page (with its diagram) keeps its one <style> element, by nonce.
STATUS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'nonce-{nonce}'")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def origins(public_url: str, listen_host: str, port: int) -> frozenset[str]:
    """The origins the pages accept changes from: the public URL's and, when
    that is this machine, its other names (``localhost`` and the loopback address)."""
    allowed = {origin_of(public_url)}
    if origin_of(public_url) == origin_of(f"http://{_bracketed(listen_host)}:{port}"):
        allowed |= {f"http://localhost:{port}", f"http://127.0.0.1:{port}", f"http://[::1]:{port}"}
    return frozenset(allowed)


def default_public_url(listen_host: str, port: int) -> str:
    host = "127.0.0.1" if listen_host in ("0.0.0.0", "::", "") else listen_host  # noqa: S104
    return f"http://{_bracketed(host)}:{port}"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def change_refused(headers: Mapping[str, str], allowed: frozenset[str]) -> str | None:
    """Why a POST with these headers is refused (None: it may go on).

    Under ``Referrer-Policy: no-referrer`` browsers send ``Origin: null`` on a
    POST, even from the page itself; ``Sec-Fetch-Site: same-origin`` is then
    what vouches for it (sent to https and loopback origins only).
    """
    site = headers.get("sec-fetch-site")
    if site is not None and site.lower() != "same-origin":
        return f"the form was posted from another site (Sec-Fetch-Site: {site[:40]})"
    origin = headers.get("origin")
    if origin is not None and origin != "null":
        try:
            normal = origin_of(origin)
        except (KeyError, ValueError):
            return "the Origin header is not an origin"
        if normal not in allowed:
            return f"the form was posted from another origin ({origin[:100]})"
        return None
    if site is None:
        return (
            "the browser did not say where the form came from: open the pages over https "
            "(MAILROOM_WEB_PUBLIC_URL) or at this machine's own address"
        )
    return None
