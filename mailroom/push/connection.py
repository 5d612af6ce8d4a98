"""The EventSource connection state machine.

Pure: it knows states and what may happen in each, nothing about sockets or
time. The supervisor sends it events named for what happened; one listener
turns each transition into health, metrics, logs and systemd status.
"""

from __future__ import annotations

from enum import StrEnum

from statemachine import State as MachineState
from statemachine import StateMachine


class State(StrEnum):
    """The machine's state ids, typed (a test keeps them equal to the class's)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    DEGRADED = "degraded"


class ConnectionMachine(StateMachine):
    """CONNECTING, CONNECTED, BACKOFF, DEGRADED."""

    connecting = MachineState("CONNECTING", initial=True)
    connected = MachineState("CONNECTED")
    backoff = MachineState("BACKOFF")
    degraded = MachineState("DEGRADED")

    # The stream answered 200 and is reading.
    opened = connecting.to(connected)
    # A connection attempt failed (refused, reset, 5xx, 429): wait, or give up
    # on push for now once the outage is long.
    failed = connecting.to(degraded, cond="outage_too_long") | connecting.to(backoff)
    # The server says push is unavailable (204, 400, 401, 403, no eventSourceUrl).
    refused = connecting.to(degraded)
    # An open stream broke, went silent, or missed a push; a server that keeps
    # accepting and dropping counts as an outage like one that refuses.
    lost = connected.to(degraded, cond="outage_too_long") | connected.to(backoff)
    # A clean close after a long healthy connection: reconnect at once.
    ended = connected.to(connecting)
    # The wait is over: try again.
    retry = backoff.to(connecting) | degraded.to(connecting)

    def __init__(self, degrade_after: float = 60.0, **kwargs: object) -> None:
        self.degrade_after = degrade_after
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def outage_too_long(self, outage: float = 0.0) -> bool:
        return outage >= self.degrade_after

    @property
    def state(self) -> State:
        return State(str(self.current_state_value))

    @property
    def state_name(self) -> str:
        """Lower-case state id: what /health and logs show."""
        return str(self.current_state_value)


# Read from the class: what metrics enumerate, in declaration order.
STATES = tuple(str(s.id) for s in ConnectionMachine.states)


def transitions() -> list[tuple[str, str]]:
    """Every (from, to) pair the machine allows, for metric labels."""
    pairs = {
        (str(t.source.id), str(t.target.id))
        for state in ConnectionMachine.states
        for t in state.transitions
    }
    return sorted(pairs)
