"""Draw the connection machine from the class itself.

``python -m mailroom.push.diagram`` (``make diagrams``) rewrites
``diagrams/connection.mmd`` and, when Graphviz ``dot`` is installed,
``diagrams/connection.svg``. A test fails when the file drifts from the code.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from statemachine.contrib.diagram import formatter

from mailroom.push.connection import ConnectionMachine

DIAGRAMS = Path(__file__).resolve().parents[2] / "diagrams"


def mermaid() -> str:
    return str(formatter.render(ConnectionMachine, "mermaid")).rstrip() + "\n"


def main() -> int:
    DIAGRAMS.mkdir(exist_ok=True)
    (DIAGRAMS / "connection.mmd").write_text(mermaid())
    print(f"wrote {DIAGRAMS / 'connection.mmd'}")
    if shutil.which("dot") is None:
        print("Graphviz 'dot' not found: SVG not drawn (apt-get install graphviz)")
        return 0
    try:
        from statemachine.contrib.diagram import DotGraphMachine
    except ImportError:
        print("pydot not installed: SVG not drawn (pip install pydot)")
        return 0
    graph = DotGraphMachine(ConnectionMachine)()  # type: ignore[no-untyped-call]
    graph.write_svg(str(DIAGRAMS / "connection.svg"))
    print(f"wrote {DIAGRAMS / 'connection.svg'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
