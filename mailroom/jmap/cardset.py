"""A pass's writes to JMAP contacts: one plan, sent as few ``ContactCard/set`` calls as allowed.

Every sender's new contact, filled fields and membership patches go into one
plan that remembers which sender each part is for, so the server's answer
becomes failures per sender. The plan is cut to ``maxObjectsInSet`` objects a
call and ``maxCallsInRequest`` calls a request: a compliant server answers
``requestTooLarge`` past either, and that would fail every pass forever.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mailroom.core.chunks import chunked
from mailroom.jmap.client import JmapClient
from mailroom.jmap.errors import JmapMethodError
from mailroom.jmap.wire import RATE_LIMIT, RATE_LIMIT_WAITS, Call, set_errors

METHOD = "ContactCard/set"


@dataclass
class Writes:
    """One sender's part of the plan."""

    uid: str = ""
    card: dict[str, Any] | None = None  # a new contact
    patches: dict[str, dict[str, Any]] = field(default_factory=dict)  # card id -> patch
    destroy: str | None = None  # the card id of a contact to delete


@dataclass
class CardSetPlan:
    create: dict[str, dict[str, Any]] = field(default_factory=dict)
    update: dict[str, dict[str, Any]] = field(default_factory=dict)
    destroy: dict[str, str] = field(default_factory=dict)  # card id -> address
    creation: dict[str, str] = field(default_factory=dict)  # creation id -> address
    updating: dict[str, set[str]] = field(default_factory=dict)  # card id -> addresses
    uids: dict[str, str] = field(default_factory=dict)  # address -> uid
    parts: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # address -> patches

    def add(self, address: str, writes: Writes) -> None:
        self.uids[address] = writes.uid
        self.parts[address] = writes.patches
        if writes.card is not None:
            key = f"c{len(self.create)}"
            self.create[key] = writes.card
            self.creation[key] = address
        for card_id, patch in writes.patches.items():
            merged = self.update.setdefault(card_id, {})
            for path, value in patch.items():
                if isinstance(value, dict) and isinstance(merged.get(path), dict):
                    # Two senders joining a group that had no members map:
                    # the one whole-map value carries both.
                    merged[path] = {**merged[path], **value}
                else:
                    merged[path] = value
            self.updating.setdefault(card_id, set()).add(address)
        if writes.destroy is not None:
            self.destroy[writes.destroy] = address

    @property
    def empty(self) -> bool:
        return not self.create and not self.update and not self.destroy


@dataclass
class CardSetResult:
    created: dict[str, Any] = field(default_factory=dict)
    not_created: dict[str, dict[str, Any]] = field(default_factory=dict)
    updated: set[str] = field(default_factory=set)
    not_updated: dict[str, dict[str, Any]] = field(default_factory=dict)
    destroyed: set[str] = field(default_factory=set)
    not_destroyed: dict[str, dict[str, Any]] = field(default_factory=dict)

    def merge(self, sent: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
        """One call's answer; whatever its shape, each object sent ends done or refused."""
        created, updated = _dict(answer.get("created")), _dict(answer.get("updated"))
        not_created = set_errors(answer.get("notCreated"))
        not_updated = set_errors(answer.get("notUpdated"))
        unsaid = {"type": "serverFail", "description": "the server did not say"}
        for key in _dict(sent.get("create")):
            if key in created and key not in not_created:
                self.created[key] = created[key]
                self.not_created.pop(key, None)
            else:
                self.not_created[key] = not_created.get(key, unsaid)
        for key in _dict(sent.get("update")):
            if key in updated and key not in not_updated:
                self.updated.add(key)
                self.not_updated.pop(key, None)
            else:
                self.not_updated[key] = not_updated.get(key, unsaid)
        destroyed = answer.get("destroyed")
        done = (
            {d for d in destroyed if isinstance(d, str)} if isinstance(destroyed, list) else set()
        )
        not_destroyed = set_errors(answer.get("notDestroyed"))
        for key in sent.get("destroy") or ():
            if key in done and key not in not_destroyed:
                self.destroyed.add(key)
                self.not_destroyed.pop(key, None)
            else:
                self.not_destroyed[key] = not_destroyed.get(key, unsaid)

    def refuse(self, args: Mapping[str, Any], error: dict[str, Any]) -> None:
        """A whole call failed: each of its objects gets that call's error."""
        for key in _dict(args.get("create")):
            self.not_created[key] = error
        for key in _dict(args.get("update")):
            self.not_updated[key] = error
        for key in args.get("destroy") or ():
            self.not_destroyed[key] = error


async def send(
    jmap: JmapClient,
    create: Mapping[str, dict[str, Any]],
    update: Mapping[str, dict[str, Any]],
    destroy: Sequence[str] = (),
) -> CardSetResult:
    """Send the creates, the updates, then the deletions, chunked to the session's limits.

    A method error on one call fails that call's objects only; a request
    that fails as a whole (the credentials, the network) raises. Records the
    server throttled (``rateLimit``) are sent again after a pause.
    """
    result = CardSetResult()
    pending_create, pending_update, pending_destroy = dict(create), dict(update), list(destroy)
    for wait in (0.0, *RATE_LIMIT_WAITS):
        if not pending_create and not pending_update and not pending_destroy:
            break
        if wait:
            await jmap.sleep(wait)
        await _round(jmap, pending_create, pending_update, pending_destroy, result)
        pending_create = {k: create[k] for k in _throttled(result.not_created) if k in create}
        pending_update = {k: update[k] for k in _throttled(result.not_updated) if k in update}
        pending_destroy = [k for k in _throttled(result.not_destroyed) if k in destroy]
    return result


async def _round(
    jmap: JmapClient,
    create: Mapping[str, dict[str, Any]],
    update: Mapping[str, dict[str, Any]],
    destroy: Sequence[str],
    result: CardSetResult,
) -> None:
    session = jmap.session
    items: list[tuple[str, str, dict[str, Any] | None]] = [
        *(("create", key, value) for key, value in create.items()),
        *(("update", key, value) for key, value in update.items()),
        *(("destroy", key, None) for key in destroy),
    ]
    calls: list[dict[str, Any]] = []
    for chunk in chunked(items, session.max_objects_in_set):
        args: dict[str, Any] = {}
        for kind, key, value in chunk:
            if kind == "destroy":
                args.setdefault(kind, []).append(key)
            else:
                args.setdefault(kind, {})[key] = value
        calls.append(args)
    for batch in chunked(calls, session.max_calls_in_request):
        resp = await jmap.request([Call(METHOD, args, f"s{i}") for i, args in enumerate(batch)])
        for i, args in enumerate(batch):
            try:
                result.merge(args, resp.get(f"s{i}", METHOD))
            except JmapMethodError as exc:
                error = {"type": exc.type}
                if exc.description:
                    error["description"] = exc.description
                result.refuse(args, error)


def _throttled(errors: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return [key for key, err in errors.items() if err.get("type") == RATE_LIMIT]


def error_text(err: Any) -> str:
    err = _dict(err)
    kind = err.get("type")
    text = kind if isinstance(kind, str) and kind else "no reason given"
    description = err.get("description")
    if isinstance(description, str) and description:
        text += f" ({description[:200]})"
    return text


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
