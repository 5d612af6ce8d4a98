"""A Grafana dashboard for Mailroom (``mailroom monitoring dashboard``).

Current Grafana's JSON model (schemaVersion 39), Prometheus chosen through a
``datasource`` variable and the scrape job through ``job``, so it imports
into any Grafana without editing.
"""

from __future__ import annotations

import json
from typing import Any

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
J = 'job="$job"'


def _target(expr: str, legend: str = "", ref: str = "A") -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}


def _panel(
    pid: int,
    kind: str,
    title: str,
    targets: list[dict[str, Any]],
    grid: tuple[int, int, int, int],
    *,
    description: str,
    unit: str = "short",
    options: dict[str, Any] | None = None,
    mappings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    x, y, w, h = grid
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, "mappings": mappings or []}, "overrides": []},
        "options": options or {},
    }


def panels() -> list[dict[str, Any]]:
    state_names = {
        "type": "value",
        "options": {"0": {"text": "—", "color": "transparent"}, "1": {"text": "in state"}},
    }
    return [
        _panel(
            1,
            "state-timeline",
            "Push connection state",
            [
                _target(
                    f"mailroom_eventsource_state{{{J}}}",
                    "{{mailroom_eventsource_state}}",
                )
            ],
            (0, 0, 16, 6),
            description="CONNECTING, CONNECTED, BACKOFF or DEGRADED over time",
            mappings=[state_names],
            options={"showValue": "never", "mergeValues": True},
        ),
        _panel(
            2,
            "stat",
            "Last successful pass",
            [_target(f"time() - mailroom_last_successful_poll_timestamp_seconds{{{J}}}", "age")],
            (16, 0, 4, 6),
            description="Seconds since a triage pass last succeeded",
            unit="s",
        ),
        _panel(
            3,
            "stat",
            "/health",
            [_target(f"mailroom_health_status{{{J}}} == 1", "{{status}}")],
            (20, 0, 4, 6),
            description="The /health verdict: pass, warn or fail",
            options={"textMode": "name"},
        ),
        _panel(
            4,
            "timeseries",
            "Reconnects",
            [
                _target(
                    f"increase(mailroom_eventsource_reconnects_total{{{J}}}[$__rate_interval])",
                    "reconnects",
                )
            ],
            (0, 6, 8, 7),
            description="Stream reconnection attempts",
        ),
        _panel(
            5,
            "timeseries",
            "Events by kind",
            [
                _target(
                    "sum by (kind) (rate(mailroom_eventsource_events_total"
                    f"{{{J}}}[$__rate_interval]))",
                    "{{kind}}",
                )
            ],
            (8, 6, 8, 7),
            description="What the stream delivers (state changes, pings, comments, malformed)",
            unit="ops",
        ),
        _panel(
            6,
            "timeseries",
            "Passes by trigger and outcome",
            [
                _target(
                    "sum by (trigger, outcome) (increase(mailroom_polls_total"
                    f"{{{J}}}[$__rate_interval]))",
                    "{{trigger}} {{outcome}}",
                )
            ],
            (16, 6, 8, 7),
            description="Triage passes: push, catch-up, safety net; success or failure",
        ),
        _panel(
            7,
            "timeseries",
            "Pass duration",
            [
                _target(
                    f"histogram_quantile({q}, sum by (le) (rate("
                    f"mailroom_poll_duration_seconds_bucket{{{J}}}[$__rate_interval])))",
                    f"p{int(q * 100)}",
                    ref,
                )
                for q, ref in ((0.5, "A"), (0.9, "B"), (0.99, "C"))
            ],
            (0, 13, 8, 7),
            description="Median, 90th and 99th percentile of pass durations",
            unit="s",
        ),
        _panel(
            8,
            "timeseries",
            "Senders triaged by category",
            [
                _target(
                    "sum by (category) (increase(mailroom_triaged_senders_total"
                    f"{{{J}}}[$__rate_interval]))",
                    "{{category}}",
                )
            ],
            (8, 13, 8, 7),
            description="Senders moved out of the Screener, by category",
        ),
        _panel(
            9,
            "timeseries",
            "Missed pushes and triage failures",
            [
                _target(
                    f"increase(mailroom_eventsource_missed_pushes_total{{{J}}}[$__rate_interval])",
                    "missed pushes",
                    "A",
                ),
                _target(
                    f"increase(mailroom_triage_failures_total{{{J}}}[$__rate_interval])",
                    "sender failures",
                    "B",
                ),
            ],
            (16, 13, 8, 7),
            description="Changes only the safety net found; senders left for a later pass",
        ),
    ]


def dashboard() -> dict[str, Any]:
    return {
        "title": "Mailroom",
        "uid": "mailroom",
        "description": "Push-driven mail triage: connection, passes, senders triaged",
        "tags": ["mailroom", "email"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "1m",
        "timezone": "browser",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "options": [],
                },
                {
                    "name": "job",
                    "label": "Job",
                    "type": "textbox",
                    "query": "mailroom",
                    "current": {"text": "mailroom", "value": "mailroom"},
                    "hide": 0,
                    "options": [],
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels(),
    }


def render_dashboard() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def expressions(board: dict[str, Any]) -> list[str]:
    """Every PromQL expression in a dashboard, for checks."""
    return [t["expr"] for p in board.get("panels", []) for t in p.get("targets", [])]
