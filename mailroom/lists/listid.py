"""List ids as RFC 2919 defines them (pure).

``List-Id: Mailroom users <users.mailroom.example>``: the id is the part in
angle brackets, a dot-atom of at most 255 characters, compared without regard
to case (§3: "list-id ... case-insensitive"). A header with no angle brackets
is taken whole when it is itself such a dot-atom (some list servers omit
them). Anything else (markup, spaces, control characters, an id too long) is
no list id at all: the email is treated as not from a list.
"""

from __future__ import annotations

import re
from typing import Any

MAX_ID = 255  # RFC 2919 §2: list-id is at most 255 octets
MAX_HEADER = 4096  # a header longer than this is not read at all
SUBJECT_PREFIX = "list:"  # how a list's decisions are named in the ledger
LIST_ID = "header:List-Id:asText"  # the Email property (RFC 8621 §4.1.3) a list id is read from

# RFC 5322 dot-atom-text: atext runs separated by single dots; RFC 2919
# requires at least one dot (list-label "." list-id-namespace).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})+")


def list_id(header: Any) -> str | None:
    """The list id in a ``List-Id`` header's value, lower case (None: none)."""
    if not isinstance(header, str) or len(header) > MAX_HEADER:
        return None
    text = header.strip()
    if "<" in text or ">" in text:
        start, end = text.rfind("<"), text.rfind(">")
        if start < 0 or end < start:
            return None
        text = text[start + 1 : end].strip()
    if len(text) > MAX_ID or not _DOT_ATOM.fullmatch(text):
        return None
    return text.lower()


def list_name(header: Any) -> str:
    """The list's own name, the phrase before the angle brackets
    (``Mailroom users``), unquoted; "" when there is none."""
    if not isinstance(header, str) or len(header) > MAX_HEADER or "<" not in header:
        return ""
    phrase = header[: header.rfind("<")].strip()
    if len(phrase) >= 2 and phrase[0] == phrase[-1] == '"':
        phrase = phrase[1:-1].replace('\\"', '"')
    return phrase


def subject_of(list_id_: str) -> str:
    """The ledger subject of a list's decisions: ``list:users.mailroom.example``."""
    return SUBJECT_PREFIX + list_id_


def parse_subject(text: str) -> str | None:
    """The list id in ``list:<id>`` as a user typed it (angle brackets allowed)."""
    value = text.strip()
    if not value.lower().startswith(SUBJECT_PREFIX):
        return None
    return list_id(value[len(SUBJECT_PREFIX) :])
