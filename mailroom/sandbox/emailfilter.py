"""The stand-in's Email/query filter: operators, ``inMailbox``,
``inMailboxOtherThan``, ``from``/``to``/``cc``/``bcc`` as the text match
Fastmail makes, and ``header``. The whole filter is checked before any email
is matched (as a server does), then each email is matched lazily."""

from __future__ import annotations

from typing import Any

from mailroom.sandbox.mailmodel import Email, MethodError

PROPERTIES = frozenset({"inMailbox", "inMailboxOtherThan", "from", "to", "cc", "bcc", "header"})
OPERATORS = frozenset({"AND", "OR", "NOT"})


def check(cond: Any) -> None:
    """Raise ``unsupportedFilter``/``invalidArguments`` for any part of a filter
    the stand-in (and so Mailroom) does not use, wherever it sits."""
    if not isinstance(cond, dict):
        raise MethodError("unsupportedFilter", "filter must be an object")
    if "operator" in cond:
        if cond["operator"] not in OPERATORS:
            raise MethodError("unsupportedFilter", f"operator {cond['operator']}")
        conditions = cond.get("conditions")
        if not isinstance(conditions, list):
            raise MethodError("invalidArguments", "conditions must be a list")
        for c in conditions:
            check(c)
        return
    for key, value in cond.items():
        if key not in PROPERTIES:
            raise MethodError("unsupportedFilter", f"filter property {key}")
        if key == "header" and (not isinstance(value, list) or len(value) not in (1, 2)):
            raise MethodError("invalidArguments", "header: one or two strings")


def matches(email: Email, cond: Any) -> bool:
    """Whether an email passes an Email/query filter (RFC 8621 §4.4.1), as far
    as Mailroom's filters go; any other is ``unsupportedFilter``."""
    if not isinstance(cond, dict):
        raise MethodError("unsupportedFilter", "filter must be an object")
    if "operator" in cond:
        # Evaluated lazily, as a server's index would: an AND stops at the
        # first condition that fails (inMailbox first, say), an OR at the first hit.
        subs = (matches(email, c) for c in cond.get("conditions") or [])
        op = cond["operator"]
        if op == "AND":
            return all(subs)
        if op == "OR":
            return any(subs)
        if op == "NOT":
            return not any(subs)
        raise MethodError("unsupportedFilter", f"operator {op}")
    for key, value in cond.items():
        if key == "inMailbox":
            if value not in email.mailbox_ids:
                return False
        elif key == "inMailboxOtherThan":
            if not email.mailbox_ids - set(value):
                return False
        elif key in ("from", "to", "cc", "bcc"):
            # A text match, like Fastmail's: "bob@x.com" also matches
            # "jimbob@x.com", so clients must confirm the address.
            needle = str(value).lower()
            field = {"from": email.from_, "to": email.to, "cc": email.cc, "bcc": email.bcc}[key]
            if not any(
                needle in a.get("email", "").lower() or needle in a.get("name", "").lower()
                for a in field
            ):
                return False
        elif key == "header":
            # [name] or [name, text]: the field exists, or contains the text.
            if not isinstance(value, list) or len(value) not in (1, 2):
                raise MethodError("invalidArguments", "header: one or two strings")
            name = str(value[0]).lower()
            fields = [v for k, v in email.headers if k.lower() == name]
            if not fields:
                return False
            if len(value) == 2 and not any(str(value[1]).lower() in f.lower() for f in fields):
                return False
        else:
            raise MethodError("unsupportedFilter", f"filter property {key}")
    return True
