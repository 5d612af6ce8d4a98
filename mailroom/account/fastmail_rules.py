"""The Fastmail rules a user creates by hand (no API creates them), in order.

Pure: from the categories to numbered lines in the words of Fastmail's
Settings → Filters & Rules. Children before parents (a Person is also in the
Imbox group, and the more specific rule must win), the Screener catch-all last.
"""

from __future__ import annotations

from mailroom.account.categories import Categories, Category


def _depth(categories: Categories, category: Category) -> int:
    return len(categories.chain(category))


def fastmail_rules(categories: Categories, screener: str) -> list[str]:
    ordered = sorted(categories, key=lambda c: -_depth(categories, c))
    lines = []
    for c in ordered:
        if c.add_to_inbox:
            action = f'keep it in the Inbox and add the label "{c.destination}"'
        else:
            action = f'move it to "{c.destination}"'
        lines.append(
            f'If the sender is a member of the contact group "{c.contact_group}": '
            f"{action}; stop processing more rules."
        )
    lines.append(
        f'If the sender is not in my contacts: move it to "{screener}". (Keep this rule last.)'
    )
    return [f"{i}. {line}" for i, line in enumerate(lines, start=1)]
