"""Settings: defaults, every error message, secrets from files and systemd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailroom.cli import main
from mailroom.contacts.select import ContactsChoice
from mailroom.settings import SettingsError, load_settings
from tests.process import run_mailroom

BASE = {
    "MAILROOM_JMAP_TOKEN": "fmu1-secret-token",
    "MAILROOM_CARDDAV_USERNAME": "me@example.com",
    "MAILROOM_CARDDAV_PASSWORD": "app-password-123",
}


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    return info.value.problems


def test_defaults() -> None:
    s = load_settings(BASE)
    assert s.jmap_session_url == "https://api.fastmail.com/jmap/session"
    assert s.carddav_url == "https://carddav.fastmail.com"
    assert (s.poll_interval, s.debounce_seconds) == (60.0, 3.0)
    assert (s.http_host, s.http_port) == ("127.0.0.1", 8080)
    assert (s.log_level, s.log_format) == ("INFO", "console")
    assert (s.screener_mailbox, s.error_label) == ("Screener", "@MailroomError")
    assert (s.back_label, s.domain_label) == ("@ToScreener", "@WholeDomain")
    assert [c.label for c in s.categories] == [
        "@ToImbox",
        "@ToFeed",
        "@ToPaperTrail",
        "@ToJail",
        "@ToPerson",
    ]
    assert s.jmap_token.reveal() == "fmu1-secret-token"
    assert s.ledger_retention_days == 400
    with_state = load_settings({**BASE, "MAILROOM_STATE_DIR": "/srv/mailroom"})
    assert str(with_state.ledger_path) == "/srv/mailroom/mailroom.db"


def test_fractional_debounce_and_overrides() -> None:
    s = load_settings(
        {
            **BASE,
            "MAILROOM_DEBOUNCE_SECONDS": "0.5",
            "MAILROOM_POLL_INTERVAL": "90",
            "MAILROOM_LOG_LEVEL": "debug",
            "MAILROOM_LOG_FORMAT": "json",
            "MAILROOM_HTTP_PORT": "9100",
        }
    )
    assert (s.debounce_seconds, s.poll_interval, s.log_level) == (0.5, 90.0, "DEBUG")
    assert (s.log_format, s.http_port) == ("json", 9100)


def test_missing_required() -> None:
    # The token alone is enough: contacts can go over JMAP (RFC 9610).
    assert problems({}) == [
        "MAILROOM_JMAP_TOKEN: required, not set (or MAILROOM_JMAP_TOKEN_FILE, "
        "or systemd credential jmap-token)",
    ]


def test_the_token_alone_is_valid_settings() -> None:
    settings = load_settings({"MAILROOM_JMAP_TOKEN": "fmu1-token"})
    assert settings.contacts is ContactsChoice.AUTO
    assert (settings.carddav_username, settings.carddav_password) == ("", None)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"MAILROOM_CARDDAV_USERNAME": "me@x.com"},
            "MAILROOM_CARDDAV_PASSWORD: not set, but MAILROOM_CARDDAV_USERNAME is: set both "
            "to use CardDAV, or neither to use JMAP contacts with the API token",
        ),
        (
            {"MAILROOM_CARDDAV_PASSWORD": "app-password"},
            "MAILROOM_CARDDAV_USERNAME: not set, but MAILROOM_CARDDAV_PASSWORD is: set both "
            "to use CardDAV, or neither to use JMAP contacts with the API token",
        ),
        (
            {"MAILROOM_CONTACTS": "carddav"},
            "MAILROOM_CONTACTS=carddav needs MAILROOM_CARDDAV_USERNAME and "
            "MAILROOM_CARDDAV_PASSWORD (a Fastmail app password with CardDAV access)",
        ),
        (
            {"MAILROOM_CONTACTS": "ldap"},
            "MAILROOM_CONTACTS: expected one of auto, jmap, carddav, got 'ldap'",
        ),
    ],
)
def test_contacts_settings_errors(env: dict[str, str], expected: str) -> None:
    assert problems({"MAILROOM_JMAP_TOKEN": "fmu1-token", **env}) == [expected]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "MAILROOM_JMAP_SESSION_URL",
            "ftp://x",
            "expected an http:// or https:// URL, got 'ftp://x'",
        ),
        ("MAILROOM_CARDDAV_URL", "carddav.example", "expected an http:// or https:// URL"),
        ("MAILROOM_POLL_INTERVAL", "soon", "expected a number of seconds >= 1, got 'soon'"),
        ("MAILROOM_POLL_INTERVAL", "0", "expected a number of seconds >= 1, got '0'"),
        ("MAILROOM_POLL_INTERVAL", "nan", "expected a number of seconds >= 1, got 'nan'"),
        ("MAILROOM_DEBOUNCE_SECONDS", "-1", "expected a number of seconds >= 0, got '-1'"),
        ("MAILROOM_DEBOUNCE_SECONDS", "inf", "expected a number of seconds >= 0, got 'inf'"),
        ("MAILROOM_HTTP_PORT", "70000", "expected a TCP port 0-65535, got '70000'"),
        ("MAILROOM_HTTP_PORT", "http", "expected a TCP port 0-65535, got 'http'"),
        ("MAILROOM_LOG_LEVEL", "loud", "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("MAILROOM_LOG_FORMAT", "xml", "expected one of console, json, got 'xml'"),
        ("MAILROOM_TRIAGE_CATEGORIES", "[", "not valid JSON"),
        ("MAILROOM_TRIAGE_CATEGORIES", "{}", "expected a non-empty JSON list of categories"),
        ("MAILROOM_TRIAGE_CATEGORIES", "[]", "expected a non-empty JSON list of categories"),
        ("MAILROOM_ERROR_LABEL", "@ToFeed", "is also used as MAILROOM_TRIAGE_CATEGORIES label"),
        ("MAILROOM_SCREENER_MAILBOX", "@tojail", "is also used as MAILROOM_TRIAGE_CATEGORIES"),
        ("MAILROOM_TO_SCREENER_LABEL", "Screener", "is also used as MAILROOM_SCREENER_MAILBOX"),
        ("MAILROOM_WHOLE_DOMAIN_LABEL", "@ToScreener", "is also used as MAILROOM_TO_SCREENER"),
        ("MAILROOM_STATE_DIR", "state", "expected an absolute directory, got 'state'"),
        ("MAILROOM_LEDGER_RETENTION_DAYS", "0", "expected a whole number of days, 1-36500"),
        ("MAILROOM_LEDGER_RETENTION_DAYS", "1e9", "expected a whole number of days, 1-36500"),
    ],
)
def test_each_bad_value_is_named(name: str, value: str, expected: str) -> None:
    found = problems({**BASE, name: value})
    assert len(found) == 1
    assert found[0].startswith(f"{name}: ")
    assert expected in found[0]


def test_category_problems_are_prefixed_and_all_reported() -> None:
    cats = json.dumps(
        [
            {"name": "A", "parent": "Nope"},
            {"name": "B", "destination": "inbox"},
            {"name": "B"},
            {"name": "C", "lable": "@x"},
        ]
    )
    found = problems({**BASE, "MAILROOM_TRIAGE_CATEGORIES": cats})
    assert all(p.startswith("MAILROOM_TRIAGE_CATEGORIES: ") for p in found)
    text = "\n".join(found)
    assert "unknown parent 'Nope'" in text
    assert "duplicate category name 'B'" in text
    assert "unknown key(s) lable" in text


def test_destination_cannot_be_screener() -> None:
    found = problems(
        {**BASE, "MAILROOM_TRIAGE_CATEGORIES": '[{"name": "Feed", "destination": "Screener"}]'}
    )
    assert found == [
        "MAILROOM_SCREENER_MAILBOX: 'Screener' is also used as MAILROOM_TRIAGE_CATEGORIES "
        "destination ('Screener'); labels, the error label, the Screener, destinations and "
        "the Inbox must all be different mailboxes"
    ]


def test_secret_from_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("from-file-token\n")
    env = {**BASE, "MAILROOM_JMAP_TOKEN_FILE": str(token)}
    del env["MAILROOM_JMAP_TOKEN"]
    assert load_settings(env).jmap_token.reveal() == "from-file-token"


def test_secret_file_problems(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    env = {**BASE, "MAILROOM_CARDDAV_PASSWORD_FILE": str(tmp_path / "missing")}
    del env["MAILROOM_CARDDAV_PASSWORD"]
    assert problems(env) == [
        f"MAILROOM_CARDDAV_PASSWORD_FILE: cannot read '{tmp_path / 'missing'}': "
        "No such file or directory"
    ]
    env["MAILROOM_CARDDAV_PASSWORD_FILE"] = str(empty)
    assert problems(env) == [f"MAILROOM_CARDDAV_PASSWORD_FILE: file '{empty}' is empty"]


def test_secret_twice_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text("x")
    found = problems({**BASE, "MAILROOM_JMAP_TOKEN_FILE": str(path)})
    assert found == [
        "MAILROOM_JMAP_TOKEN: set either MAILROOM_JMAP_TOKEN or MAILROOM_JMAP_TOKEN_FILE, not both"
    ]


def test_systemd_credentials(tmp_path: Path) -> None:
    (tmp_path / "jmap-token").write_text("cred-token")
    (tmp_path / "carddav-password").write_text("cred-pass")
    env = {"MAILROOM_CARDDAV_USERNAME": "me", "CREDENTIALS_DIRECTORY": str(tmp_path)}
    s = load_settings(env)
    assert s.jmap_token.reveal() == "cred-token"
    assert s.carddav_password is not None and s.carddav_password.reveal() == "cred-pass"


def test_secrets_never_in_repr() -> None:
    s = load_settings(BASE)
    text = repr(s) + str(s)
    assert "fmu1-secret-token" not in text
    assert "app-password-123" not in text


def test_cli_exit_2_one_line_per_problem(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("MAILROOM_") or key == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(key)
    monkeypatch.setenv("MAILROOM_JMAP_TOKEN", "fmu1-do-not-print")
    monkeypatch.setenv("MAILROOM_CARDDAV_USERNAME", "me@x.com")
    monkeypatch.setenv("MAILROOM_POLL_INTERVAL", "often")
    assert main(["run"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "mailroom: invalid settings:",
        "  MAILROOM_POLL_INTERVAL: expected a number of seconds >= 1, got 'often'",
        "  MAILROOM_CARDDAV_PASSWORD: not set, but MAILROOM_CARDDAV_USERNAME is: set both to "
        "use CardDAV, or neither to use JMAP contacts with the API token",
    ]


def test_real_process_exits_2_without_traceback() -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "MAILROOM_JMAP_TOKEN": "fmu1-do-not-print",
        "MAILROOM_CARDDAV_PASSWORD": "app-do-not-print",
    }
    proc = run_mailroom("run", env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "do-not-print" not in proc.stderr + proc.stdout
    assert "MAILROOM_CARDDAV_USERNAME: not set, but MAILROOM_CARDDAV_PASSWORD is" in proc.stderr


def test_systemd_credential_unreadable(tmp_path: Path) -> None:
    (tmp_path / "jmap-token").mkdir()  # a directory: exists, cannot be read as a file
    env = {
        "MAILROOM_CARDDAV_USERNAME": "me",
        "MAILROOM_CARDDAV_PASSWORD": "p",
        "CREDENTIALS_DIRECTORY": str(tmp_path),
    }
    assert problems(env) == [
        f"MAILROOM_JMAP_TOKEN (credential jmap-token): cannot read "
        f"'{tmp_path / 'jmap-token'}': Is a directory"
    ]
