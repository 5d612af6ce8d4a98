"""Settings from ``MAILROOM_*`` environment variables, validated at start.

Every problem is collected, so one run tells the user everything that is wrong.
Secrets are read from the variable itself, from ``<NAME>_FILE``, or (under
systemd's ``LoadCredential=``) from ``$CREDENTIALS_DIRECTORY``; they are held as
:class:`Secret` and never printed.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mailroom.account.categories import (
    DEFAULT_CATEGORIES_JSON,
    Categories,
    CategoryError,
    parse_categories,
)
from mailroom.contacts.select import ContactsChoice
from mailroom.core import redact
from mailroom.core.secret import Secret
from mailroom.core.urls import insecure_reason
from mailroom.errors import ConfigError
from mailroom.ledger.location import FILE_NAME, ledger_path

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("console", "json")

# name of the variable -> file name under $CREDENTIALS_DIRECTORY
SECRET_CREDENTIALS = {
    "MAILROOM_JMAP_TOKEN": "jmap-token",
    "MAILROOM_CARDDAV_PASSWORD": "carddav-password",
}


class SettingsError(ConfigError):
    """Invalid settings; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    jmap_session_url: str
    jmap_token: Secret
    contacts: ContactsChoice
    carddav_url: str
    carddav_username: str  # empty when CardDAV is not configured
    carddav_password: Secret | None  # None when CardDAV is not configured
    poll_interval: float
    debounce_seconds: float
    http_host: str
    http_port: int
    http_allowed_hosts: tuple[str, ...]  # besides the listen address and localhost
    log_level: str
    log_format: str
    screener_mailbox: str
    error_label: str
    back_label: str  # @ToScreener: a sender back to the Screener
    domain_label: str  # @WholeDomain: the triage label decides for the domain
    categories: Categories
    ledger_path: Path  # in MAILROOM_STATE_DIR, else systemd's or XDG's state directory
    ledger_retention_days: int  # email-level detail kept this long


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate settings; raise SettingsError listing every problem."""
    reader = _Reader(os.environ if env is None else env)
    settings = Settings(
        jmap_session_url=reader.url(
            "MAILROOM_JMAP_SESSION_URL", "https://api.fastmail.com/jmap/session"
        ),
        jmap_token=reader.secret("MAILROOM_JMAP_TOKEN"),
        contacts=ContactsChoice(
            reader.choice("MAILROOM_CONTACTS", "auto", tuple(c.value for c in ContactsChoice))
        ),
        carddav_url=reader.url("MAILROOM_CARDDAV_URL", "https://carddav.fastmail.com"),
        carddav_username=reader.optional("MAILROOM_CARDDAV_USERNAME"),
        carddav_password=reader.optional_secret("MAILROOM_CARDDAV_PASSWORD"),
        poll_interval=reader.number("MAILROOM_POLL_INTERVAL", 60, minimum=1),
        debounce_seconds=reader.number("MAILROOM_DEBOUNCE_SECONDS", 3, minimum=0),
        http_host=reader.host("MAILROOM_HTTP_HOST", "127.0.0.1"),
        http_port=reader.port("MAILROOM_HTTP_PORT", 8080),
        http_allowed_hosts=reader.hosts("MAILROOM_HTTP_ALLOWED_HOSTS"),
        log_level=reader.choice("MAILROOM_LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
        log_format=reader.choice("MAILROOM_LOG_FORMAT", "console", LOG_FORMATS),
        screener_mailbox=reader.required("MAILROOM_SCREENER_MAILBOX", "Screener"),
        error_label=reader.required("MAILROOM_ERROR_LABEL", "@MailroomError"),
        back_label=reader.required("MAILROOM_TO_SCREENER_LABEL", "@ToScreener"),
        domain_label=reader.required("MAILROOM_WHOLE_DOMAIN_LABEL", "@WholeDomain"),
        categories=reader.categories("MAILROOM_TRIAGE_CATEGORIES"),
        ledger_path=reader.ledger_path(),
        ledger_retention_days=reader.whole(
            "MAILROOM_LEDGER_RETENTION_DAYS", 400, minimum=1, maximum=36500, unit="days"
        ),
    )
    reader.cross_check(settings)
    if reader.problems:
        raise SettingsError(reader.problems)
    redact.register(settings.jmap_token.reveal())
    if settings.carddav_password is not None:
        redact.register(settings.carddav_password.reveal(), username=settings.carddav_username)
    return settings


def load_ledger_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the ledger is, for the commands that only read it (no credentials needed)."""
    reader = _Reader(os.environ if env is None else env)
    path = reader.ledger_path()
    if reader.problems:
        raise SettingsError(reader.problems)
    return path


def _valid_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
        return True
    except ValueError:
        pass
    labels = value.rstrip(".").split(".")
    return len(value) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


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

    def optional(self, name: str) -> str:
        return self._get(name) or ""

    def url(self, name: str, default: str) -> str:
        value = self._get(name) or default
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            self.problems.append(f"{name}: not a URL: {value!r}")
            return value
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problems.append(f"{name}: expected an http:// or https:// URL, got {value!r}")
        elif (problem := insecure_reason(value)) is not None:
            self.problems.append(
                f"{name}: credentials would travel in clear: {problem}; plain http is "
                "only allowed to this machine (127.0.0.1, ::1, localhost)"
            )
        return value

    def host(self, name: str, default: str) -> str:
        value = self._get(name) or default
        if not _valid_host(value):
            self.problems.append(
                f"{name}: expected an IP address or a host name to listen on, got {value!r}"
            )
            return default
        return value

    def hosts(self, name: str) -> tuple[str, ...]:
        """A comma-separated list of host names or IP addresses (may be empty)."""
        names = [n.strip() for n in (self._get(name) or "").split(",") if n.strip()]
        bad = [n for n in names if not _valid_host(n)]
        if bad:
            self.problems.append(
                f"{name}: expected host names or IP addresses, comma-separated; not one: {bad[0]!r}"
            )
            return ()
        return tuple(names)

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

    def whole(self, name: str, default: int, *, minimum: int, maximum: int, unit: str) -> int:
        value = self._get(name)
        if value is None:
            return default
        if not value.isdigit() or not minimum <= int(value) <= maximum:
            self.problems.append(
                f"{name}: expected a whole number of {unit}, {minimum}-{maximum}, got {value!r}"
            )
            return default
        return int(value)

    def ledger_path(self) -> Path:
        name = "MAILROOM_STATE_DIR"
        value = self._get(name)
        if value is not None and not Path(value).expanduser().is_absolute():
            self.problems.append(f"{name}: expected an absolute directory, got {value!r}")
            return Path("/nonexistent") / FILE_NAME
        return ledger_path(self.env)

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

    def optional_secret(self, name: str) -> Secret | None:
        """A secret that may be absent: None when no way of setting it is used."""
        cred_dir = self._get("CREDENTIALS_DIRECTORY")
        cred_name = SECRET_CREDENTIALS.get(name)
        if (
            self._get(name) is None
            and self._get(f"{name}_FILE") is None
            and not (cred_dir and cred_name and (Path(cred_dir) / cred_name).exists())
        ):
            return None
        return self.secret(name)

    def secret(self, name: str) -> Secret:
        direct = self._get(name)
        file_var = f"{name}_FILE"
        file_path = self._get(file_var)
        if direct is not None and file_path is not None:
            self.problems.append(f"{name}: set either {name} or {file_var}, not both")
            return Secret("")
        if direct is not None:
            return self._checked_secret(name, direct)
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
        return self._checked_secret(where, value)

    def _checked_secret(self, where: str, value: str) -> Secret:
        # Never echo the value: name what is wrong and where.
        for index, char in enumerate(value):
            if not "\x21" <= char <= "\x7e":
                kind = (
                    "a line break"
                    if char in "\r\n"
                    else "a space"
                    if char == " "
                    else "a control character"
                    if not char.isprintable()
                    else "a non-ASCII character"
                )
                self.problems.append(
                    f"{where}: must be one line of visible ASCII; found {kind} at "
                    f"character {index + 1} (is the file holding more than the token?)"
                )
                return Secret("")
        return Secret(value)

    def cross_check(self, settings: Settings) -> None:
        self._check_carddav(settings)
        self._check_mailboxes(settings)

    def _check_carddav(self, settings: Settings) -> None:
        """CardDAV is all or nothing; ``MAILROOM_CONTACTS=carddav`` needs all of it."""
        user, password = settings.carddav_username, settings.carddav_password
        if user and password is None:
            self.problems.append(
                "MAILROOM_CARDDAV_PASSWORD: not set, but MAILROOM_CARDDAV_USERNAME is: set "
                "both to use CardDAV, or neither to use JMAP contacts with the API token"
            )
        elif password is not None and not user:
            self.problems.append(
                "MAILROOM_CARDDAV_USERNAME: not set, but MAILROOM_CARDDAV_PASSWORD is: set "
                "both to use CardDAV, or neither to use JMAP contacts with the API token"
            )
        elif settings.contacts is ContactsChoice.CARDDAV and not user:
            self.problems.append(
                "MAILROOM_CONTACTS=carddav needs MAILROOM_CARDDAV_USERNAME and "
                "MAILROOM_CARDDAV_PASSWORD (a Fastmail app password with CardDAV access)"
            )

    def _check_mailboxes(self, settings: Settings) -> None:
        """Labels, the error label, the Screener, destinations and Inbox never overlap.

        Compared case-insensitively: servers differ on whether "inbox" is "Inbox".
        """
        cats = settings.categories
        # The single-valued settings last, so a clash is reported against them.
        roles: list[tuple[str, str]] = [
            *(("MAILROOM_TRIAGE_CATEGORIES label", label) for label in cats.labels),
            *(("MAILROOM_TRIAGE_CATEGORIES destination", d) for d in cats.destinations),
            ("MAILROOM_SCREENER_MAILBOX", settings.screener_mailbox),
            ("MAILROOM_ERROR_LABEL", settings.error_label),
            ("MAILROOM_TO_SCREENER_LABEL", settings.back_label),
            ("MAILROOM_WHOLE_DOMAIN_LABEL", settings.domain_label),
        ]
        seen: dict[str, tuple[str, str]] = {"inbox": ("the Inbox", "Inbox")}
        for what, name in roles:
            key = name.casefold()
            other = seen.get(key)
            if other is not None and not (
                # One destination shared by categories is fine.
                what.endswith("destination") and other[0].endswith("destination")
            ):
                self.problems.append(
                    f"{what}: {name!r} is also used as {other[0]} ({other[1]!r}); "
                    "labels, the error label, the Screener, destinations and the Inbox "
                    "must all be different mailboxes"
                )
                continue
            seen.setdefault(key, (what, name))
