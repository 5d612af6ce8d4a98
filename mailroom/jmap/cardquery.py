"""Every contact card matching a filter: ``ContactCard/query`` paged, with its ``get``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mailroom.jmap.client import JmapClient
from mailroom.jmap.errors import JmapProtocolError
from mailroom.jmap.wire import Call, Responses, ref

MAX_QUERY_PAGES = 100  # 100 pages of contacts for one pass: past that the server is lying


async def query_cards(
    jmap: JmapClient,
    filter_: Mapping[str, Any],
    properties: Sequence[str] | None,
    extra: Call | None = None,
) -> tuple[list[dict[str, Any]], Responses | None]:
    """Every card matching ``filter_``; ``extra`` rides in the first request if it fits.

    Returns the cards and the first request's responses (None if ``extra``
    did not fit and was not sent). Pages by position until a short page,
    measured against the limit the server says it applied.
    """
    room = jmap.session.max_calls_in_request
    limit = jmap.page_size()
    out: list[dict[str, Any]] = []
    first: Responses | None = None
    position = 0
    for _ in range(MAX_QUERY_PAGES):
        query = Call(
            "ContactCard/query", {"filter": filter_, "position": position, "limit": limit}, "q"
        )
        with_extra = extra is not None and position == 0 and room >= 3
        if room >= 2:
            get = Call(
                "ContactCard/get",
                {"#ids": ref("q", "ContactCard/query", "/ids"), "properties": _listed(properties)},
                "g",
            )
            calls = [query, get] + ([extra] if with_extra and extra is not None else [])
            resp = await jmap.request(calls)
            ids = _ids(resp.get("q", "ContactCard/query"))
            cards = objects(resp.get("g", "ContactCard/get"), "ContactCard/get")
        else:
            resp = await jmap.request([query])
            ids = _ids(resp.get("q", "ContactCard/query"))
            cards = []
            if ids:
                got = await jmap.request(
                    [Call("ContactCard/get", {"ids": ids, "properties": _listed(properties)}, "g")]
                )
                cards = objects(got.get("g", "ContactCard/get"), "ContactCard/get")
        if position == 0 and with_extra:
            first = resp
        out.extend(cards)
        applied = _applied_limit(resp.get("q", "ContactCard/query"), limit)
        if len(ids) < applied or not ids:
            return out, first
        position += len(ids)
    raise JmapProtocolError(f"ContactCard/query: more than {MAX_QUERY_PAGES} pages")


def objects(result: Mapping[str, Any], what: str) -> list[dict[str, Any]]:
    items = result.get("list")
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise JmapProtocolError(f"{what}: 'list' is not a list of objects")
    return items


def _ids(query: Mapping[str, Any]) -> list[str]:
    ids = query.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise JmapProtocolError("ContactCard/query: ids is not a list of strings")
    return ids


def _applied_limit(query: Mapping[str, Any], asked: int) -> int:
    limit = query.get("limit")
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < asked:
        return limit
    return asked


def _listed(properties: Sequence[str] | None) -> list[str] | None:
    """The ``properties`` argument: None asks for every property."""
    return None if properties is None else list(properties)
