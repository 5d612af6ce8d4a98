"""The stand-in's Email/query filter: operators, ``inMailbox``,
``inMailboxOtherThan``, and ``from`` as the text match Fastmail makes."""

from __future__ import annotations

from typing import Any

from mailroom.sandbox.mailmodel import Email, MethodError


def matches(email: Email, cond: Any) -> bool:
    """Whether an email passes an Email/query filter (RFC 8621 §4.4.1), as far
    as Mailroom's filters go; any other is ``unsupportedFilter``."""
    if not isinstance(cond, dict):
        raise MethodError("unsupportedFilter", "filter must be an object")
    if "operator" in cond:
        subs = [matches(email, c) for c in cond.get("conditions") or []]
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
