"""A JMAP request's method calls, as the stand-in reads and refuses them:
result references (RFC 8620 §3.7, with the JSON pointer's ``*``) and the
``rateLimit`` answer a throttled ``/set`` gets (as Fastmail throttles writes)."""

from __future__ import annotations

from typing import Any

from mailroom.sandbox.mailmodel import ACCOUNT_ID, Args, MethodError


def resolve_refs(args: Args, responses: list[list[Any]]) -> Args:
    """A call's arguments with each ``#name`` result reference replaced by its value."""
    out: Args = {}
    for key, value in args.items():
        if not key.startswith("#"):
            out[key] = value
            continue
        if key[1:] in args:
            raise MethodError("invalidArguments", f"both {key} and {key[1:]}")
        if not isinstance(value, dict):
            raise MethodError("invalidResultReference")
        for name, result, call_id in responses:
            if call_id == value.get("resultOf") and name == value.get("name"):
                out[key[1:]] = _pointer(result, str(value.get("path", "")))
                break
        else:
            raise MethodError("invalidResultReference", f"no result for {value!r}")
    return out


def _pointer(value: Any, path: str) -> Any:
    """Evaluate a JSON pointer with the JMAP ``*`` extension (RFC 8620 §3.7)."""
    if path in ("", "/"):
        return value
    parts = path.lstrip("/").split("/", 1)
    head = parts[0].replace("~1", "/").replace("~0", "~")
    rest = "/" + parts[1] if len(parts) > 1 else ""
    if head == "*" and isinstance(value, list):
        out: list[Any] = []
        for item in value:
            got = _pointer(item, rest)
            out.extend(got if isinstance(got, list) else [got])
        return out
    if isinstance(value, dict) and head in value:
        return _pointer(value[head], rest)
    if isinstance(value, list) and head.isdigit() and int(head) < len(value):
        return _pointer(value[int(head)], rest)
    raise MethodError("invalidResultReference", f"path {path} not found")


def throttled(args: Args) -> Args:
    """A /set answer refusing every record with ``rateLimit``; nothing was applied."""
    limit = {"type": "rateLimit", "description": "too many changes, try again shortly"}
    return {
        "accountId": ACCOUNT_ID,
        "oldState": None,
        "newState": None,
        "created": None,
        "updated": None,
        "destroyed": None,
        "notCreated": {k: limit for k in args.get("create") or {}} or None,
        "notUpdated": {k: limit for k in args.get("update") or {}} or None,
        "notDestroyed": {k: limit for k in args.get("destroy") or []} or None,
    }
