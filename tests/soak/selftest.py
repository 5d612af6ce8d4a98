"""``make soak-selftest``: the soak against deliberately broken builds.

It passes only if the soak fails every one of them: a soak that cannot tell a
broken service from a working one proves nothing.
"""

from __future__ import annotations

import argparse
import sys

from tests.soak.__main__ import run
from tests.soak.broken import BROKEN

# What each run needs to meet for its defect to show: /health can only be
# caught lying while something makes it fail; the others need no fault.
FAULTS = {
    "health-pass": ["JMAP credentials refused"],
    "forget-part-way": ["filing refused (as Cyrus 3.6 answers)"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak.selftest")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--contacts", choices=["carddav", "jmap"], default="jmap")
    args = parser.parse_args(argv)
    missed = []
    for defect, what in BROKEN.items():
        figures = run(args.seed, args.seconds, args.contacts, defect, FAULTS.get(defect, []))
        found = list(figures["violations"])  # type: ignore[call-overload]
        caught = bool(found) or bool(figures["lost"])
        first = found[0] if found else f"lost {figures['lost']}"
        print(f"soak-selftest: {defect}: {'caught' if caught else 'MISSED'} ({what}): {first}")
        if not caught:
            missed.append(defect)
    print(f"soak-selftest: {'PASS' if not missed else 'FAIL: missed ' + ', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
