"""Settings from ``MAILROOM_*`` environment variables, validated at start.

Every problem is collected, so one run tells the user everything that is wrong.
Secrets are read from the variable itself, from ``<NAME>_FILE``, or (under
systemd's ``LoadCredential=``) from ``$CREDENTIALS_DIRECTORY``; they are held as
:class:`Secret` and never printed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mailroom.core.secret import Secret
from mailroom.triage.categories import (
    DEFAULT_CATEGORIES_JSON,
    Categories,
    CategoryError,
    parse_categories,
)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("console", "json")

# name of the variable -> file name under $CREDENTIALS_DIRECTORY
SECRET_CREDENTIALS = {
    "MAILROOM_JMAP_TOKEN": "jmap-token",
    "MAILROOM_CARDDAV_PASSWORD": "carddav-password",
}


class SettingsError(ValueError):
    """Invalid settings; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    jmap_session_url: str
    jmap_token: Secret
    carddav_url: str
    carddav_username: str
    carddav_password: Secret
    poll_interval: float
    debounce_seconds: float
    http_host: str
    http_port: int
    log_level: str
    log_format: str
    screener_mailbox: str
    error_label: str
    categories: Categories


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate settings; raise SettingsError listing every problem."""
    reader = _Reader(os.environ if env is None else env)
    settings = Settings(
        jmap_session_url=reader.url(
            "MAILROOM_JMAP_SESSION_URL", "https://api.fastmail.com/jmap/session"
        ),
        jmap_token=reader.secret("MAILROOM_JMAP_TOKEN"),
        carddav_url=reader.url("MAILROOM_CARDDAV_URL", "https://carddav.fastmail.com"),
        carddav_username=reader.required("MAILROOM_CARDDAV_USERNAME"),
        carddav_password=reader.secret("MAILROOM_CARDDAV_PASSWORD"),
        poll_interval=reader.number("MAILROOM_POLL_INTERVAL", 60, minimum=1),
        debounce_seconds=reader.number("MAILROOM_DEBOUNCE_SECONDS", 3, minimum=0),
        http_host=reader.required("MAILROOM_HTTP_HOST", "127.0.0.1"),
        http_port=reader.port("MAILROOM_HTTP_PORT", 8080),
        log_level=reader.choice("MAILROOM_LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
        log_format=reader.choice("MAILROOM_LOG_FORMAT", "console", LOG_FORMATS),
        screener_mailbox=reader.required("MAILROOM_SCREENER_MAILBOX", "Screener"),
        error_label=reader.required("MAILROOM_ERROR_LABEL", "@MailroomError"),
        categories=reader.categories("MAILROOM_TRIAGE_CATEGORIES"),
    )
    reader.cross_check(settings)
    if reader.problems:
        raise SettingsError(reader.problems)
    return settings


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def _get(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def required(self, name: str, default: str | None = None) -> str:
        value = self._get(name)
        if value is None:
            if default is not None:
                return default
            self.problems.append(f"{name}: required, not set")
            return ""
        return value

    def url(self, name: str, default: str) -> str:
        value = self._get(name) or default
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problems.append(f"{name}: expected an http:// or https:// URL, got {value!r}")
        return value

    def number(self, name: str, default: float, *, minimum: float) -> float:
        value = self._get(name)
        if value is None:
            return float(default)
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < minimum:
            self.problems.append(
                f"{name}: expected a number of seconds >= {minimum:g}, got {value!r}"
            )
            return float(default)
        return number

    def port(self, name: str, default: int) -> int:
        value = self._get(name)
        if value is None:
            return default
        if not value.isdigit() or not 0 <= int(value) <= 65535:
            self.problems.append(f"{name}: expected a TCP port 0-65535, got {value!r}")
            return default
        return int(value)

    def choice(
        self, name: str, default: str, allowed: tuple[str, ...], *, upper: bool = False
    ) -> str:
        value = self._get(name)
        if value is None:
            return default
        normal = value.upper() if upper else value.lower()
        if normal not in allowed:
            self.problems.append(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
            return default
        return normal

    def categories(self, name: str) -> Categories:
        text = self._get(name) or DEFAULT_CATEGORIES_JSON
        try:
            return parse_categories(text)
        except CategoryError as exc:
            self.problems.extend(f"{name}: {problem}" for problem in exc.problems)
            return parse_categories(DEFAULT_CATEGORIES_JSON)

    def secret(self, name: str) -> Secret:
        direct = self._get(name)
        file_var = f"{name}_FILE"
        file_path = self._get(file_var)
        if direct is not None and file_path is not None:
            self.problems.append(f"{name}: set either {name} or {file_var}, not both")
            return Secret("")
        if direct is not None:
            return Secret(direct)
        if file_path is not None:
            return self._read_secret(file_var, Path(file_path))
        cred_dir = self._get("CREDENTIALS_DIRECTORY")
        cred_name = SECRET_CREDENTIALS.get(name)
        if cred_dir is not None and cred_name is not None:
            path = Path(cred_dir) / cred_name
            if path.exists():
                return self._read_secret(f"{name} (credential {cred_name})", path)
        hint = f" (or {file_var}"
        hint += f", or systemd credential {cred_name})" if cred_name else ")"
        self.problems.append(f"{name}: required, not set{hint}")
        return Secret("")

    def _read_secret(self, where: str, path: Path) -> Secret:
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
            self.problems.append(f"{where}: cannot read {str(path)!r}: {reason}")
            return Secret("")
        if not value:
            self.problems.append(f"{where}: file {str(path)!r} is empty")
        return Secret(value)

    def cross_check(self, settings: Settings) -> None:
        labels = set(settings.categories.labels)
        if settings.error_label in labels:
            self.problems.append(
                "MAILROOM_ERROR_LABEL: must differ from every triage label, "
                f"got {settings.error_label!r}"
            )
        if settings.screener_mailbox in labels:
            self.problems.append(
                "MAILROOM_SCREENER_MAILBOX: must differ from every triage label, "
                f"got {settings.screener_mailbox!r}"
            )
        if settings.screener_mailbox in settings.categories.destinations:
            self.problems.append(
                "MAILROOM_TRIAGE_CATEGORIES: a destination cannot be the Screener "
                f"mailbox {settings.screener_mailbox!r}"
            )
