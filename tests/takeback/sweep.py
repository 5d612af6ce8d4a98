"""The crash-and-refusal sweep's machinery: an HTTP transport that kills the
process at a chosen write, or has the server refuse one object of it.

A *write* is a request that can change the account: a JMAP request carrying
an ``Email/set`` or ``ContactCard/set`` with something in it, a CardDAV
``PUT`` or ``DELETE``. The transport numbers them as they go out; a fault names
one by number and what happens to it:

- ``before``: the process dies before the request leaves (nothing lands);
- ``after``: the request lands and the process dies before reading the answer;
- ``refuse``: the server refuses one object of it (JMAP: the first object of
  the first ``/set``, answered ``forbidden``; CardDAV: ``507``), the rest lands.

Dying is :class:`Killed`, a ``BaseException``: no ``except Exception`` in the
product catches it, as nothing catches SIGKILL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

FaultKind = Literal["before", "after", "refuse"]
KINDS: tuple[FaultKind, ...] = ("before", "after", "refuse")
SETS = ("Email/set", "ContactCard/set")


class Killed(BaseException):
    """The process dying at that point."""


@dataclass(frozen=True)
class Fault:
    at: int  # the write's number, from 0
    kind: FaultKind


@dataclass
class Writes:
    """The writes seen, in order: what each was (for the closing count)."""

    seen: list[str] = field(default_factory=list)


def _calls(request: httpx.Request) -> list[list[Any]] | None:
    if request.method != "POST" or b"methodCalls" not in request.content:
        return None
    try:
        body = json.loads(request.content)
    except ValueError:
        return None
    calls = body.get("methodCalls") if isinstance(body, dict) else None
    return calls if isinstance(calls, list) else None


def _objects(args: dict[str, Any]) -> int:
    return sum(len(args.get(k) or ()) for k in ("create", "update", "destroy"))


def what_writes(request: httpx.Request) -> str | None:
    """What the request writes ("Email/set", "PUT" …), None if it writes nothing."""
    if request.method in ("PUT", "DELETE"):
        return request.method
    calls = _calls(request)
    for name, args, _ in calls or []:
        if name in SETS and isinstance(args, dict) and _objects(args):
            return str(name)
    return None


class FaultTransport(httpx.AsyncBaseTransport):
    def __init__(self, fault: Fault | None = None, writes: Writes | None = None) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.fault = fault
        self.writes = writes if writes is not None else Writes()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        what = what_writes(request)
        if what is None:
            return await self._inner.handle_async_request(request)
        number = len(self.writes.seen)
        self.writes.seen.append(what)
        fault = self.fault
        if fault is None or fault.at != number:
            return await self._inner.handle_async_request(request)
        if fault.kind == "before":
            raise Killed(f"killed before write {number} ({what})")
        if fault.kind == "after":
            response = await self._inner.handle_async_request(request)
            await response.aread()
            raise Killed(f"killed after write {number} ({what}) landed")
        return await self._refuse(request)

    async def _refuse(self, request: httpx.Request) -> httpx.Response:
        if request.method in ("PUT", "DELETE"):
            # 507 as a full address book answers (403 would say the credentials).
            return httpx.Response(507, text="refused (sweep)", request=request)
        body = json.loads(request.content)
        refused: tuple[int, str, str] | None = None
        for index, (name, args, _) in enumerate(body["methodCalls"]):
            if name not in SETS or not isinstance(args, dict):
                continue
            for kind in ("create", "update", "destroy"):
                items = args.get(kind)
                if not items:
                    continue
                if kind == "destroy":
                    key = items.pop(0)
                else:
                    key = next(iter(items))
                    del items[key]
                refused = (index, kind, key)
                break
            if refused is not None:
                break
        content = json.dumps(body).encode()
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        sent = httpx.Request(request.method, request.url, headers=headers, content=content)
        response = await self._inner.handle_async_request(sent)
        raw = await response.aread()
        if refused is None:
            return httpx.Response(response.status_code, content=raw, request=request)
        answer = json.loads(raw)
        index, kind, key = refused
        result = answer["methodResponses"][index][1]
        error = {"type": "forbidden", "description": "refused (sweep)"}
        field_name = {"create": "notCreated", "update": "notUpdated", "destroy": "notDestroyed"}
        result[field_name[kind]] = {**(result.get(field_name[kind]) or {}), key: error}
        out = json.dumps(answer).encode()
        return httpx.Response(
            response.status_code,
            content=out,
            headers={"Content-Type": "application/json"},
            request=request,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()
