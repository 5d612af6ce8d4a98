"""Logging in (pure, with an injected clock): the password check, the
sessions, and the throttle on failed logins.

Sessions live in memory (a restart logs everyone out, which is also how to
log everyone out); the cookie holds only a random token. Each session has its
own CSRF token. A session ends when idle for :data:`IDLE_S`, or after
:data:`LONGEST_S` whatever, or on logout.

Failed logins are slowed per client (after a few, each waits twice as long as
the last, up to :data:`CLIENT_CAP_S`) and overall (past :data:`GLOBAL_BUDGET`
failures a minute, from anywhere, every login waits): a guesser gets a few
dozen tries an hour, not millions.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

import argon2

IDLE_S = 3600.0  # an hour without a request logs out
LONGEST_S = 7 * 86400.0
MAX_SESSIONS = 64  # the least recently used goes first
FREE_FAILURES = 5  # per client before the waits begin
CLIENT_CAP_S = 900.0
GLOBAL_BUDGET = 30  # failures a minute from all clients together
GLOBAL_WINDOW_S = 60.0
MAX_CLIENTS = 4096  # clients remembered by the throttle
MAX_PASSWORD = 1024  # characters; anything longer is refused unhashed

_HASHER = argon2.PasswordHasher()


def hash_password(password: str) -> str:
    """The line ``mailroom web-password`` prints (argon2id, the library's defaults)."""
    return _HASHER.hash(password)


def password_matches(hashed: str, password: str) -> bool:
    """Slow on purpose (tens of milliseconds): call it off the event loop."""
    if not password or len(password) > MAX_PASSWORD:
        return False
    try:
        return _HASHER.verify(hashed, password)
    except argon2.exceptions.VerificationError:
        return False
    except argon2.exceptions.InvalidHashError:
        return False


@dataclass
class Session:
    user: str
    csrf: str
    created: float
    seen: float
    notes: list[str] = field(default_factory=list)  # said once on the next page
    failures: list[tuple[str, str]] = field(default_factory=list)  # subject, why
    undoable: list[str] = field(default_factory=list)  # just decided: "Undo" offered


@dataclass
class Sessions:
    """The logged-in sessions, by the token in their cookie."""

    by_token: OrderedDict[str, Session] = field(default_factory=OrderedDict)

    def create(self, user: str, now: float) -> str:
        token = secrets.token_urlsafe(32)
        self.by_token[token] = Session(user, secrets.token_urlsafe(32), now, now)
        while len(self.by_token) > MAX_SESSIONS:
            self.by_token.popitem(last=False)
        return token

    def get(self, token: str | None, now: float) -> Session | None:
        """The live session of this token (its idle clock restarted), else None."""
        if not token or len(token) > 128:
            return None
        session = self.by_token.get(token)
        if session is None:
            return None
        if now - session.seen > IDLE_S or now - session.created > LONGEST_S:
            del self.by_token[token]
            return None
        session.seen = now
        self.by_token.move_to_end(token)
        return session

    def end(self, token: str | None) -> None:
        if token:
            self.by_token.pop(token, None)


def same_token(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


class ProxyTokens:
    """CSRF tokens for users a trusted proxy logged in: derived, not stored
    (the proxy, not Mailroom, holds their session)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def token(self, user: str) -> str:
        return hmac.new(self._key, b"proxy\0" + user.encode(), "sha256").hexdigest()


@dataclass
class _Client:
    failures: int = 0
    until: float = 0.0  # no attempt before this


@dataclass
class LoginThrottle:
    """How long a client must wait before its next login attempt."""

    clients: OrderedDict[str, _Client] = field(default_factory=OrderedDict)
    recent: list[float] = field(default_factory=list)  # failures from anyone, last minute

    def wait(self, client: str, now: float) -> float:
        """Seconds before ``client`` may try (0: now)."""
        self.recent = [t for t in self.recent if now - t < GLOBAL_WINDOW_S]
        own = self.clients.get(client)
        mine = max(0.0, own.until - now) if own else 0.0
        overall = 0.0
        if len(self.recent) >= GLOBAL_BUDGET:
            overall = GLOBAL_WINDOW_S - (now - self.recent[-GLOBAL_BUDGET])
        return max(mine, overall)

    def failed(self, client: str, now: float) -> None:
        self.recent.append(now)
        del self.recent[: -GLOBAL_BUDGET * 2]
        state = self.clients.pop(client, None) or _Client()
        state.failures += 1
        over = state.failures - FREE_FAILURES
        if over > 0:
            state.until = now + min(CLIENT_CAP_S, 2.0 ** min(over, 20))
        self.clients[client] = state
        while len(self.clients) > MAX_CLIENTS:
            self.clients.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self.clients.pop(client, None)
