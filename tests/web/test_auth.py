"""Logging in, pure: the hash, sessions expiring, the throttle (injected clock)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from mailroom.web.access import hash_problem
from mailroom.web.auth import (
    CLIENT_CAP_S,
    FREE_FAILURES,
    GLOBAL_BUDGET,
    IDLE_S,
    LONGEST_S,
    MAX_SESSIONS,
    LoginThrottle,
    ProxyTokens,
    Sessions,
    hash_password,
    password_matches,
    same_token,
)


def test_the_hash_checks_the_password_and_nothing_else() -> None:
    line = hash_password("correct horse battery")
    assert line.startswith("$argon2id$") and "correct" not in line
    assert hash_problem(line) is None
    assert password_matches(line, "correct horse battery")
    assert not password_matches(line, "correct horse batterY")
    assert not password_matches(line, "")
    assert not password_matches(line, "x" * 5000)  # refused before hashing
    assert not password_matches("not a hash", "anything")


def test_a_line_that_is_not_a_hash_is_named() -> None:
    assert "mailroom web-password" in (hash_problem("hunter22") or "")
    cut = hash_password("correct horse battery")[:40]
    assert "cut short" in (hash_problem(cut) or "")


def test_sessions_end_when_idle_or_too_old_or_on_logout() -> None:
    sessions = Sessions()
    token = sessions.create("password", now=0.0)
    session = sessions.get(token, now=IDLE_S - 1)
    assert session is not None and session.user == "password" and len(session.csrf) >= 32
    assert sessions.get(token, now=2 * IDLE_S - 2) is not None  # each request restarts it
    assert sessions.get(token, now=3 * IDLE_S) is None  # idle too long
    token = sessions.create("password", now=0.0)
    for step in range(1, int(LONGEST_S // (IDLE_S / 2)) + 2):
        seen = sessions.get(token, now=step * IDLE_S / 2)
    assert seen is None  # busy, but past the longest a session lives
    token = sessions.create("password", now=0.0)
    sessions.end(token)
    assert sessions.get(token, now=1.0) is None
    assert sessions.get(None, 1.0) is None and sessions.get("x" * 500, 1.0) is None


def test_sessions_are_bounded_least_recently_used_first() -> None:
    sessions = Sessions()
    first = sessions.create("password", 0.0)
    second = sessions.create("password", 0.0)
    for _ in range(MAX_SESSIONS - 2):
        sessions.create("password", 1.0)
    assert sessions.get(first, 2.0) is not None  # used: now the most recent
    sessions.create("password", 3.0)
    assert len(sessions.by_token) == MAX_SESSIONS
    assert sessions.get(second, 4.0) is None and sessions.get(first, 4.0) is not None


def test_tokens_compare_whole() -> None:
    assert same_token("abc", "abc")
    assert not same_token("abc", "abd") and not same_token("abc", None)
    assert not same_token("abc", "ab")
    proxy = ProxyTokens(b"k" * 32)
    assert proxy.token("ann") == ProxyTokens(b"k" * 32).token("ann") != proxy.token("bob")


def test_a_guesser_waits_longer_and_longer() -> None:
    throttle = LoginThrottle()
    now = 0.0
    for _ in range(FREE_FAILURES):
        assert throttle.wait("10.0.0.9", now) == 0.0
        throttle.failed("10.0.0.9", now)
    waits = []
    for _ in range(12):
        wait = throttle.wait("10.0.0.9", now)
        waits.append(wait)
        now += wait
        throttle.failed("10.0.0.9", now)
    assert waits[0] == 0.0 and waits[1] == 2.0 and waits[2] == 4.0
    assert max(waits) == CLIENT_CAP_S
    assert throttle.wait("10.0.0.10", now) == 0.0  # another client is not slowed by it
    throttle.succeeded("10.0.0.9")
    assert throttle.wait("10.0.0.9", now) == 0.0


def test_many_clients_together_slow_everyone() -> None:
    throttle = LoginThrottle()
    for n in range(GLOBAL_BUDGET):
        throttle.failed(f"10.0.{n}.1", 10.0)
    assert throttle.wait("192.0.2.1", 10.0) == 60.0
    assert throttle.wait("192.0.2.1", 70.0) == 0.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(0, 100), st.booleans()),
        max_size=80,
    )
)
def test_the_throttle_never_lets_more_than_a_few_guesses_through_a_minute(
    attempts: list[tuple[str, float, bool]],
) -> None:
    """Whatever the order, a client's failures in any minute after its free
    ones are few: each wait at least doubles."""
    throttle = LoginThrottle()
    now = 0.0
    tried: dict[str, list[float]] = {}
    for client, step, fails in attempts:
        now += step
        if throttle.wait(client, now) > 0:
            continue
        if fails:
            throttle.failed(client, now)
            tried.setdefault(client, []).append(now)
        else:
            throttle.succeeded(client)
            tried.pop(client, None)
    for times in tried.values():
        late = times[FREE_FAILURES:]
        gaps = [b - a for a, b in itertools.pairwise(late)]
        assert all(gap >= 2.0 ** (i + 1) - 1e-9 for i, gap in enumerate(gaps[:9]))
    assert len(throttle.clients) <= 3


def test_web_password_prints_a_hash_and_never_the_password() -> None:
    import io

    from mailroom.commands.web_password import run_web_password

    out, err = io.StringIO(), io.StringIO()
    assert run_web_password(io.StringIO("correct horse battery\n"), out, err) == 0
    line = out.getvalue().strip()
    assert hash_problem(line) is None and password_matches(line, "correct horse battery")
    assert "correct" not in out.getvalue() + err.getvalue()
    for bad, why in (("short\n", "shorter than 8"), (" padded password \n", "space")):
        out, err = io.StringIO(), io.StringIO()
        assert run_web_password(io.StringIO(bad), out, err) == 2
        assert out.getvalue() == "" and why in err.getvalue()
