"""One line per item with a mark, and the fix under each problem."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

from mailroom.core.redact import scrub

OK, BAD, INFO, WARN = "✓", "✗", "·", "!"


@dataclass
class Report:
    out: TextIO = field(default_factory=lambda: sys.stdout)
    problems: int = 0

    def ok(self, text: str) -> None:
        self._line(OK, text)

    def info(self, text: str) -> None:
        self._line(INFO, text)

    def warn(self, text: str, fix: str | None = None) -> None:
        """Worth knowing and fixing, but nothing is broken: not a problem."""
        self._line(WARN, text)
        if fix:
            print(f"    fix: {scrub(fix)}", file=self.out)

    def bad(self, text: str, fix: str | None = None) -> None:
        self.problems += 1
        self._line(BAD, text)
        if fix:
            print(f"    fix: {scrub(fix)}", file=self.out)

    def _line(self, mark: str, text: str) -> None:
        print(f"{mark} {scrub(text)}", file=self.out, flush=True)
