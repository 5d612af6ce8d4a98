"""WebDAV/CardDAV XML: request bodies and a tolerant multistatus parser.

Server XML is parsed with defusedxml: an address book server is remote input
and must not be able to expand entities into our memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET

from mailroom.errors import ServerError

DAV = "DAV:"
CARD = "urn:ietf:params:xml:ns:carddav"


def tag(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


class DavXmlError(ServerError, ValueError):
    """The server's XML is malformed or not a multistatus."""


@dataclass
class DavResponse:
    href: str
    status: int | None  # response-level status (multiget 404s), else None
    props: dict[str, Element] = field(default_factory=dict)  # 2xx props only

    def text(self, ns: str, name: str) -> str | None:
        el = self.props.get(tag(ns, name))
        return el.text if el is not None and el.text is not None else None

    def child_href(self, ns: str, name: str) -> str | None:
        el = self.props.get(tag(ns, name))
        if el is None:
            return None
        href = el.find(tag(DAV, "href"))
        return href.text.strip() if href is not None and href.text else None

    def privileges(self) -> set[str] | None:
        """``DAV:current-user-privilege-set`` as local names (``write`` …); None if absent."""
        el = self.props.get(tag(DAV, "current-user-privilege-set"))
        if el is None:
            return None
        return {
            child.tag.rpartition("}")[2]
            for privilege in el.findall(tag(DAV, "privilege"))
            for child in privilege
        }

    def has_resourcetype(self, ns: str, name: str) -> bool:
        el = self.props.get(tag(DAV, "resourcetype"))
        return el is not None and el.find(tag(ns, name)) is not None


def _status_code(text: str | None) -> int | None:
    # "HTTP/1.1 404 Not Found"
    parts = (text or "").split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def parse_multistatus(body: bytes) -> list[DavResponse]:
    try:
        root = SafeET.fromstring(body)
    except Exception as exc:  # ParseError, and defusedxml's refusals
        raise DavXmlError(f"malformed XML ({type(exc).__name__})") from None
    if root.tag != tag(DAV, "multistatus"):
        raise DavXmlError(f"expected DAV:multistatus, got {root.tag}")
    out = []
    for resp in root.findall(tag(DAV, "response")):
        href_el = resp.find(tag(DAV, "href"))
        if href_el is None or not href_el.text:
            raise DavXmlError("a DAV:response has no href")
        item = DavResponse(
            href=href_el.text.strip(),
            status=_status_code(resp.findtext(tag(DAV, "status"))),
        )
        for propstat in resp.findall(tag(DAV, "propstat")):
            code = _status_code(propstat.findtext(tag(DAV, "status")))
            prop = propstat.find(tag(DAV, "prop"))
            if prop is None or code is None or not 200 <= code < 300:
                continue
            for child in prop:
                item.props[child.tag] = child
        out.append(item)
    return out


def propfind_body(props: Iterable[tuple[str, str]]) -> str:
    inner = "".join(f"<{_prefix(ns)}:{name}/>" for ns, name in props)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<d:propfind xmlns:d="DAV:" xmlns:c="{CARD}"><d:prop>{inner}</d:prop></d:propfind>'
    )


def _prefix(ns: str) -> str:
    return "d" if ns == DAV else "c"


def query_body(prop: str, values: Iterable[str]) -> str:
    """addressbook-query: cards whose ``prop`` equals any value, case-insensitively."""
    matches = "".join(
        f'<c:prop-filter name="{escape(prop)}">'
        '<c:text-match collation="i;unicode-casemap" match-type="equals">'
        f"{escape(value)}</c:text-match></c:prop-filter>"
        for value in values
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<c:addressbook-query xmlns:d="DAV:" xmlns:c="{CARD}">'
        "<d:prop><d:getetag/><c:address-data/></d:prop>"
        f'<c:filter test="anyof">{matches}</c:filter></c:addressbook-query>'
    )


def multiget_body(hrefs: Iterable[str]) -> str:
    inner = "".join(f"<d:href>{escape(h)}</d:href>" for h in hrefs)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<c:addressbook-multiget xmlns:d="DAV:" xmlns:c="{CARD}">'
        f"<d:prop><d:getetag/><c:address-data/></d:prop>{inner}</c:addressbook-multiget>"
    )
