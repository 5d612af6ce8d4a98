"""Names for new contacts, from what an email's From header offers."""

from __future__ import annotations


def split_name(name: str) -> tuple[str, str]:
    """(given, family) from a display name: "Doe, Jane" or "Jane Q. Doe"."""
    name = " ".join(name.split())
    if "," in name:
        family, given = (part.strip() for part in name.split(",", 1))
        return given, family
    if " " in name:
        given, family = name.rsplit(" ", 1)
        return given, family
    return name, ""


def company_name(address: str, name: str) -> str:
    """The display name, else the address's domain: better than nothing on a card."""
    return name or address.rpartition("@")[2]
