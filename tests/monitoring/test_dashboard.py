"""The Grafana dashboard as printed: loads, is parameterised, uses only exposed names."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from mailroom.monitoring.dashboard import expressions
from mailroom.observe.metrics import Metrics
from mailroom.push.connection import STATES, transitions


def printed() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "mailroom", "monitoring", "dashboard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    board: dict[str, object] = json.loads(out)
    return board


def test_the_printed_dashboard_loads_and_asks_for_its_datasource() -> None:
    board = printed()
    assert board["schemaVersion"] == 39
    variables = {v["name"]: v for v in board["templating"]["list"]}  # type: ignore[index]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = board["panels"]
    assert isinstance(panels, list)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'job="$job"' in target["expr"]
    titles = " ".join(p["title"] for p in panels).lower()
    for wanted in (
        "connection state",
        "reconnects",
        "events by kind",
        "passes by trigger and outcome",
        "duration",
        "senders triaged by category",
        "missed pushes",
        "last successful pass",
    ):
        assert wanted in titles


def test_every_expression_uses_only_names_metrics_exposes() -> None:
    metrics = Metrics(STATES, transitions(), ["Feed"], "test")
    text = metrics.render().decode()
    exposed = set(re.findall(r"^(mailroom_\w+)", text, re.MULTILINE))
    board = printed()
    for expr in expressions(board):
        names = set(re.findall(r"\b(mailroom_\w+)\b(?!\s*=)", expr))
        assert names and names <= exposed, (expr, names - exposed)
