"""The README is the user's manual and its Layout section the map of the code:
both kept true by these checks."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _layout() -> str:
    text = README.read_text()
    section = text[text.index("## Layout") :]
    return section[section.index("```") : section.index("```", section.index("```") + 3)]


def test_the_layout_names_every_package_and_top_level_module_and_nothing_else() -> None:
    layout = _layout()
    named = set(re.findall(r"^  ([a-z_]+(?:/|\.py))", layout, re.MULTILINE))
    package = ROOT / "mailroom"
    present = {p.name + "/" for p in package.iterdir() if (p / "__init__.py").exists()}
    present |= {p.name for p in package.glob("*.py")} - {"__init__.py", "__main__.py"}
    assert named == present


def test_the_readme_is_a_manual_a_newcomer_reads_to_the_quick_start() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 250
    quick = next(i for i, line in enumerate(lines) if line.startswith("## Quick start"))
    assert quick < 60


def test_every_local_link_in_the_manual_leads_somewhere() -> None:
    pages = [README, ROOT / "SECURITY.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")]
    for page in pages:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
