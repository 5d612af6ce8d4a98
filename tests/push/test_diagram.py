"""The drawn state diagram must match the machine in the code."""

from __future__ import annotations

from pathlib import Path

from mailroom.push.diagram import DIAGRAMS, mermaid

DESIGN = Path(__file__).resolve().parents[2] / "docs" / "design.md"


def test_mermaid_file_matches_the_class() -> None:
    assert (DIAGRAMS / "connection.mmd").read_text() == mermaid(), "run: make diagrams"


def test_the_design_page_shows_the_current_diagram() -> None:
    text = DESIGN.read_text()
    assert "```mermaid\n" + mermaid() + "```" in text, "paste diagrams/connection.mmd"


def test_diagram_names_every_state_and_event() -> None:
    text = mermaid()
    for word in ("CONNECTING", "CONNECTED", "BACKOFF", "DEGRADED"):
        assert f'"{word}"' in text
    for event in ("Opened", "Failed", "Refused", "Lost", "Ended", "Retry"):
        assert f": {event}" in text
