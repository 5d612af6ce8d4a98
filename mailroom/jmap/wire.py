"""JMAP on the wire, pure: method calls and their back-references, a request's
responses, filters, pages and /set outcomes, read defensively (a server may
send any shape; each is checked before use)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from mailroom.core.chunks import MAX_OR_CONDITIONS, chunked
from mailroom.jmap.errors import JmapMethodError, JmapProtocolError
from mailroom.jmap.session import Session
from mailroom.net import DEFAULT_MAX_BODY


@dataclass(frozen=True)
class Call:
    """One method call; ``call_id`` names it for back-references."""

    name: str
    args: dict[str, Any]
    call_id: str


def any_of(conditions: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """A filter matching any of ``conditions`` (one needs no operator)."""
    if len(conditions) == 1:
        return conditions[0]
    return {"operator": "OR", "conditions": list(conditions)}


def any_of_chunks(conditions: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Filters that together match any of ``conditions``, none of them too large."""
    return [any_of(chunk) for chunk in chunked(conditions, MAX_OR_CONDITIONS)]


def ref(call_id: str, name: str, path: str) -> dict[str, str]:
    """A result reference (RFC 8620 §3.7), e.g. ``ref("q", "Email/query", "/ids")``."""
    return {"resultOf": call_id, "name": name, "path": path}


class Responses:
    """Method responses of one request, looked up by call id."""

    def __init__(self, items: Sequence[tuple[str, dict[str, Any], str]]) -> None:
        self._by_id: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for name, args, call_id in items:
            self._by_id.setdefault(call_id, []).append((name, args))

    def has(self, call_id: str) -> bool:
        """Whether the request carried (and the server answered) ``call_id``."""
        return call_id in self._by_id

    def get(self, call_id: str, name: str | None = None) -> dict[str, Any]:
        """The arguments of the response to ``call_id``; raise on a method error."""
        entries = self._by_id.get(call_id)
        if not entries:
            raise JmapProtocolError(f"no response for call {call_id!r}")
        for resp_name, args in entries:
            if resp_name == "error":
                raise JmapMethodError(
                    name or call_id,
                    str(args.get("type", "unknown")),
                    text_or_none(args.get("description")),
                )
            if name is None or resp_name == name:
                return args
        raise JmapProtocolError(f"call {call_id!r}: no {name} response")


# Pauses before sending again the records a server throttled one by one
# (a ``rateLimit`` SetError, as Fastmail does rather than HTTP 429).
RATE_LIMIT = "rateLimit"


RATE_LIMIT_WAITS = (1.0, 2.0, 4.0)


def answer_cap(session: Session) -> int:
    """The largest JMAP answer read, from what the session lets a request ask for.

    A request asks for at most ``maxObjectsInGet`` objects a call, of a few
    small properties; 16 KiB each leaves room. Never below the default, never
    above 256 MiB, whatever the session says.
    """
    return min(256 * 1024 * 1024, max(DEFAULT_MAX_BODY, 16 * 1024 * session.max_objects_in_get))


def set_errors(value: Any) -> dict[str, dict[str, Any]]:
    """``notCreated``/``notUpdated`` as id -> SetError, whatever shape the server sent.

    RFC 8620 says a map of SetErrors or null; a list of ids or an error that
    is not an object still names failures, never crashes the pass.
    """
    if isinstance(value, dict):
        return {
            str(k): (v if isinstance(v, dict) else {"type": "serverFail", "description": str(v)})
            for k, v in value.items()
        }
    if isinstance(value, list):
        return {
            str(k): {"type": "serverFail", "description": "listed as not done, without a reason"}
            for k in value
            if isinstance(k, str)
        }
    return {}


MAX_PAGES = 10_000  # 2.5 million emails at 256 a page: past that the server is lying


@dataclass(frozen=True)
class Page:
    ids: list[str]
    emails: list[dict[str, Any]]
    last: bool  # shorter than the limit applied, or empty: nothing after it
    state: str  # the Email state when it was read


@dataclass
class SetOutcome:
    """What a chunked ``/set`` did; ``failures`` holds ids the server refused."""

    new_state: str | None = None
    mailbox_state: str | None = None
    updated: set[str] = field(default_factory=set)
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    # Every Email state the writes produced (a move writes twice): push events
    # carrying only these are Mailroom's own echoes.
    states: set[str] = field(default_factory=set)
    mailbox_states: set[str] = field(default_factory=set)  # likewise, of the Mailbox type
    # Each Email/set's (oldState, newState), in the order sent: a newState is
    # Mailroom's own only if nothing else changed the account since the state
    # before it (its oldState is one Mailroom saw or made).
    written: list[tuple[str | None, str]] = field(default_factory=list)
    # With ``read_back``: each email's mailboxes read right after the write.
    seen: dict[str, frozenset[str]] = field(default_factory=dict)


MAILBOXES = Call("Mailbox/get", {"ids": None}, "m")  # every mailbox


def mailboxes_in(responses: Responses, call_id: str) -> tuple[list[dict[str, Any]], str]:
    """The mailboxes and the Mailbox state a ``MAILBOXES`` call answered."""
    result = responses.get(call_id, "Mailbox/get")
    return list_of_objects(result, "Mailbox/get"), str(result.get("state", ""))


@dataclass(eq=False)
class RideAlong:
    """A read waiting to ride in another request (``JmapClient.ride_along``)."""

    call: Call
    responses: Responses | None = None


def mailboxes_of(ids: Sequence[str], call_id: str) -> Call:
    return Call("Email/get", {"ids": list(ids), "properties": ["id", "mailboxIds"]}, call_id)


def mailbox_ids(email: Mapping[str, Any]) -> frozenset[str]:
    boxes = email.get("mailboxIds")
    return frozenset(k for k, v in boxes.items() if v) if isinstance(boxes, dict) else frozenset()


def note_mailbox_state(resp: Responses, outcome: SetOutcome) -> None:
    state = resp.get("mb", "Mailbox/get").get("state")
    outcome.mailbox_state = state if isinstance(state, str) else None
    if outcome.mailbox_state is not None:
        outcome.mailbox_states.add(outcome.mailbox_state)


def absorb(into: SetOutcome, part: SetOutcome) -> None:
    """One step of a move into the move's outcome."""
    into.requests += part.requests
    into.states |= part.states
    into.written += part.written
    into.new_state = part.new_state or into.new_state
    into.mailbox_state = part.mailbox_state or into.mailbox_state
    into.mailbox_states |= part.mailbox_states
    into.failures.update(part.failures)
    into.seen.update(part.seen)


def json_of(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise JmapProtocolError(f"{what}: response is not JSON") from None


def problem_of(response: httpx.Response) -> tuple[str, str] | None:
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(data, dict) and isinstance(data.get("type"), str):
        return data["type"], text_or_none(data.get("detail")) or ""
    return None


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def list_of_objects(result: Mapping[str, Any], what: str) -> list[dict[str, Any]]:
    items = result.get("list")
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise JmapProtocolError(f"{what}: 'list' is not a list of objects")
    return items


def query_args(
    filter_: Mapping[str, Any], position: int, limit: int, *, oldest_first: bool = True
) -> dict[str, Any]:
    return {
        "filter": filter_,
        "sort": [{"property": "receivedAt", "isAscending": oldest_first}],
        "position": position,
        "limit": limit,
    }


def query_ids(query: Mapping[str, Any]) -> list[str]:
    ids = query.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise JmapProtocolError("Email/query: ids is not a list of strings")
    return ids


def page_of(query: Mapping[str, Any], got: Mapping[str, Any], asked: int) -> Page:
    ids = query_ids(query)
    # A server may clamp the limit (RFC 8620 §5.5) and says so in "limit".
    limit = query.get("limit")
    applied = asked
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < asked:
        applied = limit
    state = got.get("state")
    return Page(
        ids=ids,
        emails=list_of_objects(got, "Email/get"),
        last=len(ids) < applied or not ids,
        state=state if isinstance(state, str) else "",
    )


def read_set_answer(resp: Responses, call_id: str, sent: list[str], outcome: SetOutcome) -> None:
    """One Email/set call's answer: each email sent ends updated or in ``failures``."""
    try:
        result = resp.get(call_id, "Email/set")
    except JmapMethodError as exc:  # this call's emails only
        for key in sent:
            outcome.failures[key] = {"type": exc.type, "description": str(exc)}
        return
    if isinstance(result.get("newState"), str):
        outcome.new_state = result["newState"]
        outcome.states.add(result["newState"])
        before = result.get("oldState")
        outcome.written.append((before if isinstance(before, str) else None, result["newState"]))
    updated = result.get("updated")
    done = set(updated) if isinstance(updated, dict) else set()
    failures = set_errors(result.get("notUpdated"))
    for key in sent:
        if key in failures:
            outcome.failures[key] = failures[key]
        elif key in done:
            outcome.updated.add(key)
            outcome.failures.pop(key, None)
        else:
            outcome.failures[key] = {
                "type": "serverFail",
                "description": "the server did not say whether it updated it",
            }
