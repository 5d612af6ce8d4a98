"""Settings from ``MAILROOM_*`` environment variables, validated at start.

Every problem is collected, so one run tells the user everything that is wrong.
Secrets are read from the variable itself, from ``<NAME>_FILE``, or (under
systemd's ``LoadCredential=``) from ``$CREDENTIALS_DIRECTORY``; they are held as
:class:`Secret` and never printed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from mailroom.account.categories import (
    Categories,
)
from mailroom.account.own import address
from mailroom.contacts.select import ContactsChoice
from mailroom.core import redact
from mailroom.core.secret import Secret
from mailroom.environment import Reader
from mailroom.errors import ConfigError
from mailroom.web.access import (
    WebAccess,
    beyond_loopback_problem,
    hash_problem,
    header_problem,
    networks,
    origin_of,
    origin_problem,
)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("console", "json")


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
    list_label: str  # @WholeList: the triage label decides for the email's mailing list
    own_addresses: tuple[str, ...]  # the user's own, besides what the server says
    trust_sent: str | None  # the category of senders you wrote to (None: off)
    categories: Categories
    ledger_path: Path  # in MAILROOM_STATE_DIR, else systemd's or XDG's state directory
    ledger_retention_days: int  # email-level detail kept this long
    web: WebAccess  # who may use the pages (off until a login is set up)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate settings; raise SettingsError listing every problem."""
    reader = Reader(os.environ if env is None else env)
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
        list_label=reader.required("MAILROOM_WHOLE_LIST_LABEL", "@WholeList"),
        own_addresses=_own_addresses(reader),
        trust_sent=None,  # read once the categories are known (below)
        categories=reader.categories("MAILROOM_TRIAGE_CATEGORIES"),
        ledger_path=reader.ledger_path(),
        ledger_retention_days=reader.whole(
            "MAILROOM_LEDGER_RETENTION_DAYS", 400, minimum=1, maximum=36500, unit="days"
        ),
        web=_web_access(reader),
    )
    settings = _with_trust(settings, reader)
    _check_carddav(settings, reader.problems)
    _check_mailboxes(settings, reader.problems)
    beyond = beyond_loopback_problem(settings.web, settings.http_host)
    if beyond is not None:
        reader.problems.append(beyond)
    if reader.problems:
        raise SettingsError(reader.problems)
    redact.register(settings.jmap_token.reveal())
    if settings.carddav_password is not None:
        redact.register(settings.carddav_password.reveal(), username=settings.carddav_username)
    return settings


def load_ledger_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the ledger is, for the commands that only read it (no credentials needed)."""
    reader = Reader(os.environ if env is None else env)
    path = reader.ledger_path()
    if reader.problems:
        raise SettingsError(reader.problems)
    return path


def _with_trust(settings: Settings, reader: Reader) -> Settings:
    """MAILROOM_TRUST_SENT: ``off`` or a category (its name or label, any case)."""
    wanted = (reader.optional("MAILROOM_TRUST_SENT") or "off").strip()
    if wanted.casefold() == "off":
        return settings
    for c in settings.categories:
        if wanted.casefold() in (c.name.casefold(), c.label.casefold()):
            return replace(settings, trust_sent=c.name)
    names = ", ".join(c.name for c in settings.categories)
    reader.problems.append(
        f"MAILROOM_TRUST_SENT: {wanted[:60]!r} is not a category: one of {names}, or off"
    )
    return settings


def _own_addresses(reader: Reader) -> tuple[str, ...]:
    items = [i.strip() for i in reader.optional("MAILROOM_OWN_ADDRESSES").split(",") if i.strip()]
    out = []
    for item in items:
        got = address(item)
        if got is None:
            reader.problems.append(
                f"MAILROOM_OWN_ADDRESSES: expected email addresses, comma-separated; "
                f"not one: {item[:100]!r}"
            )
            return ()
        out.append(got)
    return tuple(dict.fromkeys(out))


def _web_access(reader: Reader) -> WebAccess:
    pages = reader.choice("MAILROOM_WEB", "on", ("on", "off")) == "on"
    password = reader.optional_secret("MAILROOM_WEB_PASSWORD")
    if password is not None and password.reveal():
        why = hash_problem(password.reveal())
        if why is not None:
            reader.problems.append(f"MAILROOM_WEB_PASSWORD_FILE: the file {why}")
            password = None
    given = reader.optional("MAILROOM_WEB_AUTH_HEADER") or None
    header = given
    if header is not None and (why := header_problem(header)) is not None:
        reader.problems.append(f"MAILROOM_WEB_AUTH_HEADER: {why}")
        header = None
    proxies, why = networks(reader.optional("MAILROOM_WEB_TRUSTED_PROXIES"))
    if why is not None:
        reader.problems.append(f"MAILROOM_WEB_TRUSTED_PROXIES: {why}")
    elif header is not None and not proxies:
        reader.problems.append(
            "MAILROOM_WEB_AUTH_HEADER: set, but MAILROOM_WEB_TRUSTED_PROXIES is not: list the "
            "reverse proxies' addresses (only they may say who is logged in; anyone else "
            "could send the header)"
        )
        header = None
    elif proxies and given is None:
        reader.problems.append(
            "MAILROOM_WEB_TRUSTED_PROXIES: set, but MAILROOM_WEB_AUTH_HEADER is not: name the "
            "header your proxy puts the logged-in user in (Remote-User, X-Forwarded-User …)"
        )
    public = reader.optional("MAILROOM_WEB_PUBLIC_URL") or None
    if public is not None and (why := origin_problem(public)) is not None:
        reader.problems.append(f"MAILROOM_WEB_PUBLIC_URL: {why}")
        public = None
    return WebAccess(
        pages=pages,
        password_hash=password,
        auth_header=header.lower() if header else None,
        trusted_proxies=proxies,
        public_url=origin_of(public) if public else None,
    )


def _check_carddav(settings: Settings, problems: list[str]) -> None:
    """CardDAV is all or nothing; ``MAILROOM_CONTACTS=carddav`` needs all of it."""
    user, password = settings.carddav_username, settings.carddav_password
    if user and password is None:
        problems.append(
            "MAILROOM_CARDDAV_PASSWORD: not set, but MAILROOM_CARDDAV_USERNAME is: set "
            "both to use CardDAV, or neither to use JMAP contacts with the API token"
        )
    elif password is not None and not user:
        problems.append(
            "MAILROOM_CARDDAV_USERNAME: not set, but MAILROOM_CARDDAV_PASSWORD is: set "
            "both to use CardDAV, or neither to use JMAP contacts with the API token"
        )
    elif settings.contacts is ContactsChoice.CARDDAV and not user:
        problems.append(
            "MAILROOM_CONTACTS=carddav needs MAILROOM_CARDDAV_USERNAME and "
            "MAILROOM_CARDDAV_PASSWORD (a Fastmail app password with CardDAV access)"
        )


def _check_mailboxes(settings: Settings, problems: list[str]) -> None:
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
        ("MAILROOM_WHOLE_LIST_LABEL", settings.list_label),
    ]
    seen: dict[str, tuple[str, str]] = {"inbox": ("the Inbox", "Inbox")}
    for what, name in roles:
        key = name.casefold()
        other = seen.get(key)
        if other is not None and not (
            # One destination shared by categories is fine.
            what.endswith("destination") and other[0].endswith("destination")
        ):
            problems.append(
                f"{what}: {name!r} is also used as {other[0]} ({other[1]!r}); "
                "labels, the error label, the Screener, destinations and the Inbox "
                "must all be different mailboxes"
            )
            continue
        seen.setdefault(key, (what, name))
