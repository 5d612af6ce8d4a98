"""Triage categories: what each triage label means, validated as a whole.

A category names the contact group a sender joins, the mailbox their mail is
re-filed to, and optionally a parent whose groups and mailbox also apply (a
Person is also Imbox). Validation collects every problem at once so a user
fixes their configuration in one go.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mailroom.contacts.book import ContactKind
from mailroom.errors import ConfigError

_KEYS = {"name", "label", "contact_group", "destination", "parent", "add_to_inbox", "contact_type"}


@dataclass(frozen=True)
class Category:
    name: str
    label: str
    contact_group: str
    destination: str
    parent: str | None
    add_to_inbox: bool
    contact_type: ContactKind


class CategoryError(ConfigError):
    """Invalid category configuration; ``problems`` has one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


DEFAULT_CATEGORIES_JSON = json.dumps(
    [
        {"name": "Imbox", "add_to_inbox": True},
        {"name": "Feed"},
        {"name": "Paper Trail"},
        {"name": "Jail"},
        {"name": "Person", "parent": "Imbox", "contact_type": "person"},
    ]
)


class Categories:
    """An ordered, validated set of categories with chain lookups."""

    def __init__(self, items: Iterable[Category]) -> None:
        self._items = tuple(items)
        self._by_name = {c.name: c for c in self._items}
        self._by_label = {c.label: c for c in self._items}

    def __iter__(self) -> Iterator[Category]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Categories) and other._items == self._items

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Categories({[c.name for c in self._items]!r})"

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(c.label for c in self._items)

    @property
    def contact_groups(self) -> tuple[str, ...]:
        return tuple(c.contact_group for c in self._items)

    @property
    def destinations(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.destination for c in self._items))

    def by_name(self, name: str) -> Category:
        return self._by_name[name]

    def by_label(self, label: str) -> Category:
        return self._by_label[label]

    def chain(self, category: Category) -> tuple[Category, ...]:
        """The category followed by its ancestors, nearest first."""
        out = [category]
        while out[-1].parent is not None:
            out.append(self._by_name[out[-1].parent])
        return tuple(out)


def parse_categories(text: str) -> Categories:
    """Parse ``MAILROOM_TRIAGE_CATEGORIES`` JSON; raise CategoryError listing problems."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CategoryError([f"not valid JSON ({exc.msg} at position {exc.pos})"]) from None
    if not isinstance(raw, list) or not raw:
        raise CategoryError(["expected a non-empty JSON list of categories"])
    problems: list[str] = []
    specs = [
        spec
        for index, item in enumerate(raw, start=1)
        if (spec := _spec(index, item, problems)) is not None
    ]
    names = [s["name"] for s in specs]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"duplicate category name {dup!r}")
    by_name = {s["name"]: s for s in specs}
    for spec in specs:
        parent = spec["parent"]
        if parent is not None and parent not in by_name:
            problems.append(f"category {spec['name']!r}: unknown parent {parent!r}")
    problems.extend(_cycles(by_name))
    if problems:
        raise CategoryError(problems)
    resolved = [_resolve(spec, by_name) for spec in specs]
    problems.extend(_clashes(resolved))
    if problems:
        raise CategoryError(problems)
    return Categories(resolved)


def _spec(index: int, item: Any, problems: list[str]) -> dict[str, Any] | None:
    """One category as given (a name, or an object), checked key by key."""
    where = f"category {index}"
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict):
        problems.append(f"{where}: expected an object or a name, got {type(item).__name__}")
        return None
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)}")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{where}: 'name' must be a non-empty string")
        return None
    where = f"category {name!r}"
    spec: dict[str, Any] = {"name": name.strip()}
    for key in ("label", "contact_group", "destination", "parent"):
        value = item.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            problems.append(f"{where}: '{key}' must be a non-empty string")
            value = None
        spec[key] = value.strip() if isinstance(value, str) else None
    add = item.get("add_to_inbox")
    if add is not None and not isinstance(add, bool):
        problems.append(f"{where}: 'add_to_inbox' must be true or false")
        add = None
    spec["add_to_inbox"] = add
    kind = item.get("contact_type", "company")
    if kind not in ("person", "company"):
        problems.append(f"{where}: 'contact_type' must be 'person' or 'company'")
        kind = "company"
    spec["contact_type"] = kind
    return spec


def _clashes(resolved: list[Category]) -> list[str]:
    """Two categories on one label or group, or a category filing into the Inbox."""
    problems = []
    labels = [c.label for c in resolved]
    for dup in sorted({x for x in labels if labels.count(x) > 1}):
        problems.append(f"duplicate label {dup!r}")
    groups = [c.contact_group for c in resolved]
    for dup in sorted({x for x in groups if groups.count(x) > 1}):
        problems.append(f"duplicate contact group {dup!r}")
    for cat in resolved:
        if cat.destination.casefold() == "inbox":
            problems.append(
                f"category {cat.name!r}: destination cannot be Inbox (use add_to_inbox)"
            )
    return problems


def _cycles(by_name: dict[str, dict[str, Any]]) -> list[str]:
    found: list[str] = []
    reported: set[str] = set()
    for start in by_name:
        seen: list[str] = []
        current: str | None = start
        while current is not None and current in by_name:
            if current in seen:
                cycle = seen[seen.index(current) :]
                key = min(cycle)
                if key not in reported:
                    reported.add(key)
                    found.append("parent cycle: " + " -> ".join([*cycle, current]))
                break
            seen.append(current)
            current = by_name[current]["parent"]
    return found


def _add_to_inbox(spec: dict[str, Any], by_name: dict[str, dict[str, Any]]) -> bool:
    # Unset means "like my parent": a Person under Imbox lands in the Inbox too.
    while spec["add_to_inbox"] is None:
        if spec["parent"] is None:
            return False
        spec = by_name[spec["parent"]]
    return bool(spec["add_to_inbox"])


def _resolve(spec: dict[str, Any], by_name: dict[str, dict[str, Any]]) -> Category:
    name: str = spec["name"]
    return Category(
        name=name,
        label=spec["label"] or "@To" + "".join(name.split()),
        contact_group=spec["contact_group"] or name,
        destination=spec["destination"] or name,
        parent=spec["parent"],
        add_to_inbox=_add_to_inbox(spec, by_name),
        contact_type=spec["contact_type"],
    )
