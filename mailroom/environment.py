"""Reading ``MAILROOM_*`` variables: each kind of value (a URL, a host, a port,
a number in range, a choice, the categories, a secret from the variable, a
file or a systemd credential) checked, with every problem collected.
:mod:`mailroom.settings` says which settings there are."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from mailroom.account.categories import (
    DEFAULT_CATEGORIES_JSON,
    Categories,
    CategoryError,
    parse_categories,
)
from mailroom.core.secret import Secret
from mailroom.core.urls import insecure_reason
from mailroom.ledger.location import FILE_NAME, ledger_path

# name of the variable -> file name under $CREDENTIALS_DIRECTORY
SECRET_CREDENTIALS = {
    "MAILROOM_JMAP_TOKEN": "jmap-token",
    "MAILROOM_CARDDAV_PASSWORD": "carddav-password",
    "MAILROOM_WEB_PASSWORD": "web-password",  # the hash `mailroom web-password` prints
}


def _valid_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
        return True
    except ValueError:
        pass
    labels = value.rstrip(".").split(".")
    return len(value) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


class Reader:
    """Reads ``MAILROOM_*`` values one by one, collecting every problem (so one
    run names them all) rather than stopping at the first."""

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
