"""``mailroom status [--url URL] [--healthcheck]``: a running instance's /health,
for a person, or for a container's ``HEALTHCHECK``.

Exit status follows the health: 0 pass, 1 warn, 2 fail, 3 unreachable. With
``--healthcheck`` (no curl in the image: the program checks itself), one line
and the two codes container engines know: 0 while triage works (pass, or warn:
push down, polling on), 1 when it has stopped or nothing answers.
"""

from __future__ import annotations

import io
import os
import sys
from typing import Any, TextIO

import httpx

from mailroom.core import redact

EXIT = {"pass": 0, "warn": 1, "fail": 2}
UNREACHABLE = 3
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - mapped away


def default_url(env: dict[str, str] | None = None) -> str:
    """Where this machine's instance answers, from MAILROOM_HTTP_HOST/PORT."""
    env = dict(os.environ) if env is None else env
    host = env.get("MAILROOM_HTTP_HOST", "127.0.0.1").strip()
    host = WILDCARDS.get(host, host)
    port = env.get("MAILROOM_HTTP_PORT", "8080").strip() or "8080"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/health"


def health_url(url: str) -> str:
    """``--url`` as given: the instance's base URL (…:8080 or …:8080/), its
    /health, or just ``host:port`` (http is assumed: the page is served plain)."""
    text = url.strip()
    if "://" not in text:
        text = f"http://{text}"
    parts = httpx.URL(text)
    if parts.path in ("", "/"):
        return str(parts.copy_with(path="/health"))
    return text


def run_status(url: str | None, out: TextIO | None = None, *, healthcheck: bool = False) -> int:
    out = out or sys.stdout
    if healthcheck:
        said = io.StringIO()
        code = _status(url, said)
        print(said.getvalue().splitlines()[0] if said.getvalue() else "no answer", file=out)
        return 0 if code in (EXIT["pass"], EXIT["warn"]) else 1
    return _status(url, out)


def _status(url: str | None, out: TextIO) -> int:
    url = health_url(url) if url else default_url()
    try:
        response = httpx.get(url, timeout=5.0)
    except httpx.ConnectError:
        print(
            f"mailroom status: nothing answers at {url}: is `mailroom run` running? "
            "(`systemctl status mailroom` for the unit; --url for another instance, "
            "MAILROOM_HTTP_HOST/PORT for where this one listens)",
            file=out,
        )
        return UNREACHABLE
    except httpx.TimeoutException:
        print(f"mailroom status: {url} did not answer within 5 s", file=out)
        return UNREACHABLE
    except (httpx.HTTPError, ValueError) as exc:
        print(f"mailroom status: cannot read {url}: {redact.scrub(str(exc))}", file=out)
        return UNREACHABLE
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("status") not in EXIT:
        kind = response.headers.get("Content-Type", "no type").split(";")[0]
        print(
            f"mailroom status: {url} answered HTTP {response.status_code} ({kind}), which is "
            "not Mailroom's health JSON: is this the instance's /health URL?",
            file=out,
        )
        return UNREACHABLE
    for line in describe(body):
        print(line, file=out)
    return EXIT.get(str(body.get("status")), UNREACHABLE)


def describe(body: dict[str, Any]) -> list[str]:
    status = str(body.get("status", "?"))
    push = body.get("eventsource") or {}
    polling = body.get("polling") or {}
    head = f"Mailroom {body.get('version', '?')}: {status.upper()}"
    if body.get("dry_run"):
        head += " (dry run: nothing is written)"
    lines = [head]
    if body.get("output"):
        lines.append(f"  why:          {body['output']}")
    notes = body.get("notes")
    for note in notes if isinstance(notes, list) else []:
        lines.append(f"  note:         {note}")
    state = str(push.get("status", "?")).upper()
    since = push.get("connected_since")
    lines.append(f"  push:         {state}" + (f" since {since}" if since else ""))
    lines.append(f"  last event:   {push.get('last_event_at') or 'none yet'}")
    lines.append(f"  reconnects:   {push.get('reconnect_count', 0)}")
    if push.get("last_error"):
        lines.append(f"  push error:   {push['last_error']}")
    last = polling.get("last_success_at")
    trigger = polling.get("last_trigger")
    lines.append(
        f"  last pass:    {last or 'none succeeded yet'}"
        + (f" (trigger {trigger})" if trigger else "")
    )
    failures = polling.get("consecutive_failures", 0)
    if failures:
        lines.append(f"  failing:      {failures} pass(es) in a row")
    if polling.get("last_error"):
        lines.append(f"  last error:   {polling['last_error']}")
    interval = polling.get("interval_seconds")
    if interval is not None:
        lines.append(f"  safety net:   a pass every {interval:g} s")
    return lines
