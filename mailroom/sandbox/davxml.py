"""The stand-in's CardDAV XML: multistatus answers and the query filter.

Written from RFC 4918 and RFC 6352 directly; none of it is shared with the
client's WebDAV code, so a misreading on either side shows up in the tests.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from mailroom.sandbox import cards as vcard
from mailroom.sandbox import vcard_versions
from mailroom.sandbox.cards import CARD, CardError, tag


def card_response(href: str, etag: str, text: str) -> str:
    """One card in a REPORT answer, read as vCard 3.0 as CardDAV clients get it."""
    return response(
        href,
        f"<d:getetag>{escape(etag)}</d:getetag>"
        f"<c:address-data>{escape(vcard_versions.to_v3_text(text))}</c:address-data>",
    )


def matches(text: str, flt: Element) -> bool:
    """Whether a card (as text) passes an ``addressbook-query`` filter (RFC 6352 §10.5)."""
    try:
        card = vcard.parse(text)
    except CardError:
        # A card the parser rejects is still in the store, and a text index
        # still finds it: the raw text is searched.
        needles = [(tm.text or "").casefold() for tm in flt.iter(tag(CARD, "text-match"))]
        return any(n and n in text.casefold() for n in needles)
    results = []
    for pf in flt.findall(tag(CARD, "prop-filter")):
        prop = pf.get("name", "").lower()
        tm = pf.find(tag(CARD, "text-match"))
        needle = (tm.text or "").casefold() if tm is not None else ""
        match_type = tm.get("match-type", "contains") if tm is not None else "contains"
        values = [str(line.value).casefold() for line in card.contents.get(prop, [])]
        if match_type == "equals":
            results.append(needle in values)
        else:
            results.append(any(needle in v for v in values))
    if not results:
        return True
    return any(results) if flt.get("test", "anyof") == "anyof" else all(results)


def response(href: str, props: str) -> str:
    return (
        f"<d:response><d:href>{escape(href)}</d:href><d:propstat><d:prop>{props}</d:prop>"
        "<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
    )


def multistatus(responses: list[str]) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<d:multistatus xmlns:d="DAV:" xmlns:c="{CARD}">{"".join(responses)}</d:multistatus>'
    )
