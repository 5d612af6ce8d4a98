"""The words the packages share: pass triggers, stream-item kinds, watched types.

Typed once here (the innermost package) so push, observe and the service never
repeat them as strings.
"""

from __future__ import annotations

from enum import StrEnum


class Trigger(StrEnum):
    """Why a triage pass ran."""

    STARTUP = "startup"  # the first pass after start
    PUSH = "push"  # the debounce fired after state events
    FALLBACK = "fallback"  # the safety-net interval ran out
    CATCHUP = "catchup"  # push came back after an outage
    CLI = "cli"  # `mailroom triage` or `undo` from the command line, not a pass of the service
    SENT = "sent"  # a sender the user has written to, trusted by a pass (MAILROOM_TRUST_SENT)
    WEB = "web"  # a decision or an undo on the web pages, carried out by the service
    RESET = "reset"  # `mailroom reset`: starting over, no decision of anyone's


# What starts a pass of the running service (its metrics' trigger label).
SERVICE_TRIGGERS = (Trigger.STARTUP, Trigger.PUSH, Trigger.FALLBACK, Trigger.CATCHUP)


class ItemKind(StrEnum):
    """What one item read from the event stream was."""

    STATE = "state"
    PING = "ping"
    COMMENT = "comment"
    MALFORMED = "malformed"
    OVERSIZED = "oversized"
    IGNORED = "ignored"
    RETRY = "retry"
    FOLDED = "folded"  # comments and pings folded into one by the reader under a flood


class FailureKind(StrEnum):
    """How a pass failed: decides the log level and what /health says."""

    REMOTE = "remote"  # the server failed or answered nonsense: retried
    AUTH = "auth"  # credentials rejected: /health fails naming who
    TIMEOUT = "timeout"  # over the pass deadline: cancelled
    UNEXPECTED = "unexpected"  # a bug or an input nobody foresaw: logged with traceback
    LEDGER = "ledger"  # the ledger cannot be written: nothing is triaged until it can
    BUSY = "busy"  # another process (a command) kept the account's writer lock too long


# The JMAP types whose changes can call for a pass.
WATCHED_TYPES = ("Email", "Mailbox")
