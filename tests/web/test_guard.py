"""Origins, the settings of who may use the pages, and what the pages show of
hostile mail (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailroom.settings import SettingsError, load_settings
from mailroom.web.access import origin_of
from mailroom.web.auth import hash_password
from mailroom.web.guard import change_refused, default_public_url, origins
from mailroom.web.screener import MAX_NAME, group, shown, view_of
from tests.test_settings import BASE

LOCAL = origins("http://127.0.0.1:8080", "127.0.0.1", 8080)


def test_only_our_own_origins_may_post() -> None:
    ok = {"origin": "http://127.0.0.1:8080", "sec-fetch-site": "same-origin"}
    assert change_refused(ok, LOCAL) is None
    assert change_refused({"origin": "http://localhost:8080"}, LOCAL) is None
    assert change_refused({"sec-fetch-site": "same-origin"}, LOCAL) is None
    # What a browser sends under Referrer-Policy: no-referrer.
    assert change_refused({"origin": "null", "sec-fetch-site": "same-origin"}, LOCAL) is None
    for bad in (
        {"origin": "http://evil.example", "sec-fetch-site": "cross-site"},
        {"origin": "http://evil.example"},
        {"origin": "null"},
        {"origin": "http://127.0.0.1:8081"},
        {"sec-fetch-site": "same-site"},
        {"sec-fetch-site": "none"},
        {"origin": "http://evil.example", "sec-fetch-site": "same-origin"},
        {},
    ):
        assert change_refused(bad, LOCAL) is not None, bad


def test_a_public_address_is_the_only_origin_then() -> None:
    public = origins("https://mail.example.org", "127.0.0.1", 8080)
    assert public == {"https://mail.example.org"}
    assert change_refused({"origin": "https://mail.example.org:443"}, public) is None
    assert change_refused({"origin": "http://127.0.0.1:8080"}, public) is not None
    assert default_public_url("0.0.0.0", 9) == "http://127.0.0.1:9"  # noqa: S104
    assert default_public_url("::1", 9) == "http://[::1]:9"
    assert origin_of("HTTPS://Mail.Example.org:443/") == "https://mail.example.org"


def _env(**extra: str) -> dict[str, str]:
    return {**BASE, **extra}


def test_settings_that_cannot_be_honoured_stop_the_start(tmp_path: pytest.TempPathFactory) -> None:
    def problems(**extra: str) -> list[str]:
        with pytest.raises(SettingsError) as info:
            load_settings(_env(**extra))
        return info.value.problems

    (p,) = problems(MAILROOM_WEB_AUTH_HEADER="Remote-User")
    assert "MAILROOM_WEB_TRUSTED_PROXIES is not" in p
    (p,) = problems(MAILROOM_WEB_TRUSTED_PROXIES="10.0.0.1")
    assert "MAILROOM_WEB_AUTH_HEADER is not" in p
    (p,) = problems(MAILROOM_WEB_AUTH_HEADER="Remote User", MAILROOM_WEB_TRUSTED_PROXIES="10.0.0.1")
    assert p.startswith("MAILROOM_WEB_AUTH_HEADER: expected an HTTP header name")
    (p,) = problems(MAILROOM_WEB_AUTH_HEADER="Cookie", MAILROOM_WEB_TRUSTED_PROXIES="10.0.0.1")
    assert "not a header a proxy sets" in p
    (p,) = problems(MAILROOM_WEB_AUTH_HEADER="X-User", MAILROOM_WEB_TRUSTED_PROXIES="10.0.0.300")
    assert p.startswith("MAILROOM_WEB_TRUSTED_PROXIES: expected IP addresses or networks")
    (p,) = problems(MAILROOM_WEB_PASSWORD_FILE="/nonexistent/hash")
    assert p.startswith("MAILROOM_WEB_PASSWORD_FILE: cannot read '/nonexistent/hash'")
    (p,) = problems(MAILROOM_WEB_PASSWORD="hunter22hunter22")
    assert "is not a password hash" in p and "hunter22" not in p  # never echoed
    (p,) = problems(MAILROOM_WEB_PUBLIC_URL="mail.example.org")
    assert p.startswith("MAILROOM_WEB_PUBLIC_URL: expected an http:// or https://")
    (p,) = problems(MAILROOM_WEB_PUBLIC_URL="https://example.org/mailroom")
    assert "served at the root" in p
    (p,) = problems(MAILROOM_WEB="maybe")
    assert p.startswith("MAILROOM_WEB:")


def test_a_login_turns_the_pages_on() -> None:
    assert not load_settings(_env()).web.enabled  # loopback, no login: the status page only
    line = hash_password("correct horse battery")
    web = load_settings(_env(MAILROOM_WEB_PASSWORD=line, MAILROOM_HTTP_HOST="0.0.0.0")).web  # noqa: S104
    assert web.enabled and web.password_hash is not None
    proxied = load_settings(
        _env(
            MAILROOM_WEB_AUTH_HEADER="Remote-User",
            MAILROOM_WEB_TRUSTED_PROXIES="10.0.0.1, 192.168.0.0/24",
            MAILROOM_WEB_PUBLIC_URL="https://Mail.Example.org/",
        )
    ).web
    assert proxied.enabled and proxied.auth_header == "remote-user"
    assert proxied.public_url == "https://mail.example.org"
    assert proxied.proxy_trusted("192.168.0.77") and proxied.proxy_trusted("10.0.0.1")
    assert not proxied.proxy_trusted("10.0.0.2") and not proxied.proxy_trusted(None)
    assert not proxied.proxy_trusted("not an address")


HOSTILE = [
    "<script>alert(1)</script>",
    "Bank\u202egnp.exe",  # a right-to-left override
    "ann\u200b@example.com",
    "line\nbreak\r\x00nul",
    "x" * 10_000,
]


def test_hostile_names_are_flattened_and_bounded() -> None:
    assert shown("Bank\u202egnp.exe", 50) == "Bankgnp.exe"
    assert shown("line\nbreak\r\x00nul", 50) == "line break nul"
    assert shown("x" * 10_000, MAX_NAME) == "x" * (MAX_NAME - 1) + "…"
    assert shown(None, 5) == "" and shown(42, 5) == ""
    assert shown("<script>", 50) == "<script>"  # markup stays text: the template escapes it


@given(st.text(max_size=400), st.integers(1, 300))
def test_shown_text_is_always_one_bounded_line(text: str, limit: int) -> None:
    out = shown(text, limit)
    assert len(out) <= limit
    assert "\n" not in out and "\u202e" not in out and "\x00" not in out


def test_senders_are_grouped_newest_first() -> None:
    emails: list[dict[str, Any]] = [
        {
            "from": [{"email": "Bo@B.example", "name": "Bo"}],
            "subject": "new",
            "preview": "p",
            "receivedAt": "2026-12-02T10:00:00Z",
            "mailboxIds": {"scr": True},
        },
        {
            "from": [{"email": "ann@a.example", "name": ""}],
            "subject": "a1",
            "receivedAt": "2026-12-01T10:00:00Z",
            "mailboxIds": {"scr": True, "lbl": True},
        },
        {
            "from": [{"email": "bo@b.example", "name": "Bo Old"}],
            "subject": "old",
            "receivedAt": "2026-11-01T10:00:00Z",
            "mailboxIds": {"scr": True},
        },
        {"from": [{"email": "me@mine.example"}], "receivedAt": "2026-12-03T10:00:00Z"},
        {"from": None, "subject": "no sender"},
    ]
    out = group(emails, frozenset({"lbl"}), own=frozenset({"me@mine.example"}))
    assert [(w.address, w.emails, w.subject, w.deciding) for w in out] == [
        ("bo@b.example", 2, "new", False),
        ("ann@a.example", 1, "a1", True),
    ]
    assert out[0].name == "Bo" and out[0].domain == "b.example"
    assert out[0].when is not None and out[0].when.year == 2026


def test_list_posts_wait_as_their_list_not_as_senders() -> None:
    def post(sender: str, when: str, header: str, labelled: bool = False) -> dict[str, Any]:
        boxes = {"scr": True, "lbl": True} if labelled else {"scr": True}
        return {
            "from": [{"email": sender}],
            "subject": f"from {sender}",
            "receivedAt": when,
            "mailboxIds": boxes,
            "header:List-Id:asText": header,
        }

    emails = [
        post("a@x.example", "2026-12-03T10:00:00Z", '"Users \\"all\\"" <Users.List.Example>'),
        post("b@y.example", "2026-12-02T10:00:00Z", "<users.list.example>", labelled=True),
        post("a@x.example", "2026-12-01T10:00:00Z", "dev.list.example"),
        post("a@x.example", "2026-11-01T10:00:00Z", "<not a list>"),  # as if none
    ]
    view = view_of(emails, frozenset({"lbl"}))
    assert [(w.list_id, w.emails, len(w.posters), w.deciding) for w in view.lists] == [
        ("users.list.example", 2, 2, True),
        ("dev.list.example", 1, 1, False),
    ]
    assert view.lists[0].name == 'Users "all"' and view.lists[1].name == ""
    assert view.lists[0].subject == "from a@x.example"
    assert view.lists[0].subject_key == "list:users.list.example"
    assert [(w.address, w.emails) for w in view.senders] == [("a@x.example", 1)]
    assert view.emails == 4


def test_the_public_address_is_one_the_service_answers_to() -> None:
    from mailroom.observe.hosts import host_allowed
    from mailroom.service import App

    line = hash_password("correct horse battery")
    env = _env(MAILROOM_WEB_PASSWORD=line, MAILROOM_WEB_PUBLIC_URL="https://Mail.Example.org")
    web = App(load_settings(env)).web
    assert host_allowed("mail.example.org", web.listen_host, web.allowed_hosts)
    assert not host_allowed("evil.example", web.listen_host, web.allowed_hosts)
