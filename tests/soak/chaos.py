"""A seeded schedule of faults, each with what /health must say while it lasts.

``expect`` is the ground truth once the fault has lasted ``settle`` seconds:
``fail`` when triage cannot happen (credentials refused, server unreachable),
``up`` (pass or warn, never fail) when only push suffers and polling carries
triage, ``any`` when the truth depends on timing (slow answers, retries).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from tests.faults import FaultySandbox
from tests.soak.world import World

ABSURD_RETRY = "retry: " + "9" * 5000 + "\n\nretry: soon\n\n"


@dataclass(frozen=True)
class Fault:
    kind: str
    start: Callable[[], None]
    stop: Callable[[], None]
    expect: str  # "fail" | "up" | "any"
    settle: float  # seconds before expect applies
    # How long an "any" fault lasts (seconds, drawn between the two): long
    # enough for passes to meet it.
    lasts: tuple[float, float] = (2.0, 5.0)


CARDDAV_ONLY = ("CardDAV credentials refused", "412 races on groups")


def make_faults(
    sb: FaultySandbox,
    world: World,
    rng: random.Random,
    interval: float,
    backoff_cap: float,
    *,
    carddav: bool = True,
) -> list[Fault]:
    """The fault kinds; over JMAP contacts, those only CardDAV can meet are left out."""
    faults = _faults(sb, world, rng, interval, backoff_cap)
    return faults if carddav else [f for f in faults if f.kind not in CARDDAV_ONLY]


def _faults(
    sb: FaultySandbox, world: World, rng: random.Random, interval: float, backoff_cap: float
) -> list[Fault]:
    f = sb.faults
    triage_blocked = 2 * interval + 2  # "no successful pass for two intervals"
    auth = interval + 3  # the first pass after the fault fails on credentials
    # The stream is only refused once it is tried again: after its backoff
    # (up to the cap); until then "warn" is the truth.
    stream_auth = backoff_cap + 2

    def force(route: str, status: int, headers: dict[str, str] | None = None) -> Callable[[], None]:
        def go() -> None:
            f.force(route, status, headers)  # type: ignore[arg-type]
            if route == "eventsource":
                sb.close_streams()  # the open stream was accepted before: end it

        return go

    def drop_all() -> None:
        f.drop = True
        sb.reset_connections()  # kept-alive connections too, or nothing is cut

    def clear(route: str) -> Callable[[], None]:
        return lambda: f.clear(route)  # type: ignore[arg-type]

    def setter(
        name: str, value: object, after: Callable[[], None] | None = None
    ) -> Callable[[], None]:
        def go() -> None:
            setattr(f, name, value)
            if after is not None:
                after()

        return go

    def black_hole_before_pings() -> None:
        f.stream = "silent"
        sb.close_streams()  # the next connection is silent from its first byte

    def race_groups(on: bool) -> Callable[[], None]:
        def hook(name: str) -> None:
            # Another client saves the card first: same text, new ETag.
            if rng.random() < 0.5:
                with sb.contacts.lock:
                    card = sb.contacts.cards.get(name)
                if card is not None and "X-ADDRESSBOOKSERVER-KIND" in card.text:
                    sb.contacts.write(name, card.text)

        return lambda: setattr(sb.contacts, "before_put", hook if on else None)

    def rename() -> None:
        world.rename_a_label_mailbox()

    def refuse_filing(on: bool) -> Callable[[], None]:
        """The category mailboxes the account may not file into (its rights
        lost), answered as Cyrus 3.6 answers: "updated", nothing filed, the
        email dropped if the same patch removed its other mailboxes."""

        def go() -> None:
            with sb.mail.lock:
                sb.mail.no_insert.clear()
                if on:
                    for name in world.categories.destinations:
                        sb.mail.no_insert[sb.mail.mailbox_id(name)] = "cyrus-3.6"

        return go

    status = rng.choice
    return [
        Fault(
            "server unreachable (every connection dropped)",
            drop_all,
            setter("drop", False),
            "fail",
            triage_blocked,
        ),
        Fault("connection reset", sb.reset_connections, lambda: None, "any", 0),
        Fault("stream closed", sb.close_streams, lambda: None, "up", 1),
        Fault(
            "stream black-holed before pings",
            black_hole_before_pings,
            setter("stream", "normal", sb.close_streams),
            "up",
            1,
        ),
        Fault(
            "stream black-holed after pings",
            setter("stream", "silent"),
            setter("stream", "normal", sb.close_streams),
            "up",
            1,
        ),
        Fault(
            "JMAP credentials refused", force("api", status([401, 403])), clear("api"), "fail", auth
        ),
        Fault(
            "CardDAV credentials refused",
            force("carddav", status([401, 403])),
            clear("carddav"),
            "fail-if-pending",
            auth,
        ),
        Fault(
            "stream credentials refused",
            force("eventsource", status([401, 403])),
            clear("eventsource"),
            "fail",
            stream_auth,
        ),
        Fault(
            "JMAP busy with Retry-After",
            force("api", status([429, 503]), {"Retry-After": "1"}),
            clear("api"),
            "any",
            0,
        ),
        Fault(
            "stream busy with Retry-After",
            force("eventsource", 503, {"Retry-After": "2"}),
            clear("eventsource"),
            "up",
            1,
        ),
        Fault(
            "malformed events",
            setter("malformed_events", 5),
            setter("malformed_events", 0),
            "up",
            1,
        ),
        Fault(
            "oversized event",
            setter("oversized_line", 2 << 20),
            setter("oversized_line", 0),
            "up",
            1,
        ),
        Fault(
            "absurd retry:",
            setter("stream_prefix", ABSURD_RETRY, sb.close_streams),
            setter("stream_prefix", None),
            "up",
            1,
        ),
        Fault(
            "slow answers",
            setter("delay_route", "api", setter("delay", 1.5)),
            setter("delay", 0.0),
            "any",
            0,
        ),
        Fault(
            "trickling answers",
            setter("delay_route", "api", setter("trickle", 0.25)),
            setter("trickle", 0.0),
            "any",
            0,
        ),
        Fault("412 races on groups", race_groups(True), race_groups(False), "any", 0),
        Fault(
            "emails deleted mid-pass",
            lambda: world.delete_mid_pass(True),
            lambda: world.delete_mid_pass(False),
            "any",
            0,
        ),
        Fault("label mailbox renamed", rename, world.restore_label_mailbox, "any", 0),
        Fault(
            "filing refused (as Cyrus 3.6 answers)",
            refuse_filing(True),
            refuse_filing(False),
            "any",
            0,
            lasts=(6.0, 12.0),  # several passes and a command meet it
        ),
        Fault(
            "stream closed after each event",
            setter("stream", "close-after-event", sb.close_streams),
            setter("stream", "normal", sb.close_streams),
            "up",
            1,
        ),
        Fault(
            "a flood of comments",
            setter("stream", "flood", sb.close_streams),
            setter("stream", "normal", sb.close_streams),
            "up",
            1,
        ),
    ]
