"""The status page (``GET /``): how Mailroom is doing, for a person. Pure rendering.

One small HTML document: no JavaScript, no external assets, every value
escaped (sender addresses are whatever the world put in a From header). It
keeps itself up to date every few seconds with a small script of its own
(``/static/refresh.js``, which a button pauses: an automatic reload nobody
can stop is an accessibility failure), and without it a "Reload" link does.
Nothing on it can
change anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from mailroom.observe.history import PassEntry, TriagedEntry

REFRESH_SECONDS = 5

# Where each known state sits in the diagram (x, y of the box's centre).
_POSITIONS = {
    "connecting": (90, 115),
    "connected": (470, 115),
    "backoff": (280, 205),
    "degraded": (280, 25),
}
_BOX_W, _BOX_H = 130, 34
_COLOURS = {"pass": "#1a7f37", "warn": "#9a6700", "fail": "#cf222e"}


@dataclass(frozen=True)
class PageView:
    status: str  # pass | warn | fail
    output: str | None  # why, when not pass
    version: str
    dry_run: bool
    state: str
    state_since: float | None
    states: Sequence[str]
    transitions: Sequence[tuple[str, str]]
    passes: Sequence[PassEntry]  # newest first
    senders: Sequence[TriagedEntry]  # newest first
    last_error: str | None
    now: float


def _time(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return ""
    seconds = max(0, int(now - ts))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def diagram(states: Sequence[str], transitions: Sequence[tuple[str, str]], current: str) -> str:
    """The connection machine as inline SVG, the current state highlighted."""
    pos = dict(_POSITIONS)
    for i, state in enumerate(s for s in states if s not in pos):
        pos[state] = (110 + 160 * i, 260)  # a state this drawing does not know yet
    height = 290 if len(pos) > len(_POSITIONS) else 230
    parts = [
        f'<svg class="diagram" viewBox="0 0 560 {height}" width="560" height="{height}" '
        'role="img" aria-label="connection state diagram" xmlns="http://www.w3.org/2000/svg">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#57606a"/></marker></defs>',
    ]
    for state, (x, y) in pos.items():
        active = state == current
        parts.append(
            f'<g class="state{" current" if active else ""}" data-state="{escape(state)}">'
            f'<rect x="{x - _BOX_W / 2:.0f}" y="{y - _BOX_H / 2:.0f}" width="{_BOX_W}" '
            f'height="{_BOX_H}" rx="8" fill="{"#0969da" if active else "#f6f8fa"}" '
            f'stroke="{"#0969da" if active else "#8c959f"}" stroke-width="{3 if active else 1}"/>'
            f'<text x="{x}" y="{y + 5}" text-anchor="middle" font-size="14" '
            f'font-weight="{"bold" if active else "normal"}" '
            f'fill="{"#ffffff" if active else "#24292f"}">{escape(state.upper())}</text></g>'
        )
    for source, target in transitions:
        if source not in pos or target not in pos:
            continue
        (x1, y1), (x2, y2) = pos[source], pos[target]
        # Pairs both ways get bent apart; edges stop at the box borders.
        bend = 14 if (target, source) in transitions else 0
        dx, dy = x2 - x1, y2 - y1
        length = max(1.0, (dx * dx + dy * dy) ** 0.5)
        nx, ny = -dy / length * bend, dx / length * bend
        sx, sy = _border(x1, y1, dx, dy)
        ex, ey = _border(x2, y2, -dx, -dy)
        parts.append(
            f'<path d="M{sx + nx:.0f},{sy + ny:.0f} L{ex + nx:.0f},{ey + ny:.0f}" '
            'stroke="#57606a" stroke-width="1.5" fill="none" marker-end="url(#arrow)"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _border(x: float, y: float, dx: float, dy: float) -> tuple[float, float]:
    """Where a line from a box's centre towards (dx, dy) leaves the box."""
    if dx == 0 and dy == 0:
        return x, y
    scale = min(
        (_BOX_W / 2 + 6) / abs(dx) if dx else float("inf"),
        (_BOX_H / 2 + 6) / abs(dy) if dy else float("inf"),
    )
    return x + dx * scale, y + dy * scale


def render(view: PageView, *, nonce: str = "", nav: str = "") -> str:
    """The page; ``nonce`` lets its one <style> through the pages' CSP, ``nav``
    (trusted markup) links the other pages when they are on."""
    style = f' nonce="{escape(nonce)}"' if nonce else ""
    colour = _COLOURS.get(view.status, "#57606a")
    passes = (
        "".join(
            f"<tr><td>{_time(p.at)}</td><td>{escape(p.trigger)}</td><td>{p.senders}</td>"
            f"<td>{p.duration:.2f} s</td>"
            f"<td>{'ok' if p.error is None else 'failed: ' + escape(p.error)}</td></tr>"
            for p in view.passes
        )
        or '<tr><td colspan="5">no pass yet</td></tr>'
    )
    senders = (
        "".join(
            f'<tr><td>{_time(t.at)}</td><td class="sender">{escape(t.sender)}</td>'
            f"<td>{escape(t.category)}"
            + (f' <span class="note">({escape(t.note)})</span>' if t.note else "")
            + "</td></tr>"
            for t in view.senders
        )
        or '<tr><td colspan="3">no decision yet</td></tr>'
    )
    dry = '<p class="dry">Dry run: nothing is written.</p>' if view.dry_run else ""
    output = f'<p id="output">{escape(view.output)}</p>' if view.output else ""
    error = escape(view.last_error) if view.last_error else "none"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<script src="/static/refresh.js" defer data-seconds="{REFRESH_SECONDS}"></script>
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mailroom: {escape(view.status)}</title>
<style{style}>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #24292f;
  padding: 0 1em; }}
h1 {{ font-size: 1.5em; }}
.badge {{ display: inline-block; padding: .15em .6em; border-radius: 1em; color: #fff;
  background: {colour}; font-weight: bold; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 1.5em; }}
th, td {{ text-align: left; padding: .3em .6em; border-bottom: 1px solid #d0d7de; }}
.sender {{ font-family: ui-monospace, monospace; word-break: break-all; }}
.dry {{ background: #fff8c5; padding: .5em; }}
footer {{ color: #57606a; font-size: .85em; }}
</style>
</head>
<body>
{nav}<h1>Mailroom <span class="badge" id="status">{escape(view.status)}</span></h1>
{output}{dry}
<h2>Push connection</h2>
<p>State <strong id="state">{escape(view.state.upper())}</strong> since
<span id="since">{_time(view.state_since)}</span> ({_ago(view.state_since, view.now)})</p>
{diagram(view.states, view.transitions, view.state)}
<h2>Last passes</h2>
<table id="passes">
<tr><th>Finished</th><th>Trigger</th><th>Senders</th><th>Duration</th><th>Outcome</th></tr>
{passes}
</table>
<h2>Last decisions</h2>
<table id="senders">
<tr><th>When</th><th>Sender</th><th>Category</th></tr>
{senders}
</table>
<h2>Last error</h2>
<p id="last-error">{error}</p>
<footer>Mailroom {escape(view.version)} · {_time(view.now)} · reloads every
{REFRESH_SECONDS} s · <a href="" id="reload">Reload</a> · <a href="/health">/health</a> ·
<a href="/metrics">/metrics</a></footer>
</body>
</html>
"""
