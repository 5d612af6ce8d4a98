"""The drawn state diagram must match the machine in the code."""

from __future__ import annotations

from pathlib import Path

from mailroom.push.diagram import DIAGRAMS, mermaid

README = Path(__file__).resolve().parents[2] / "README.md"


def test_mermaid_file_matches_the_class() -> None:
    assert (DIAGRAMS / "connection.mmd").read_text() == mermaid(), "run: make diagrams"


def test_readme_shows_the_current_diagram() -> None:
    assert "```mermaid\n" + mermaid() + "```" in README.read_text(), "paste diagrams/connection.mmd"


def test_diagram_names_every_state_and_event() -> None:
    text = mermaid()
    for word in ("CONNECTING", "CONNECTED", "BACKOFF", "DEGRADED"):
        assert f'"{word}"' in text
    for event in ("Opened", "Failed", "Refused", "Lost", "Ended", "Retry"):
        assert f": {event}" in text
