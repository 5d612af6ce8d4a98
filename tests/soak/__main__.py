"""The chaos soak: ``python -m tests.soak --minutes 2 [--seed N]`` (``make soak``: 30).

Runs the real service in its own process against the stand-in while a
simulated user labels, re-labels and conflicts senders and a seeded schedule
injects faults. Checks throughout and at the end that no email is ever in no
mailbox, no label comes off before its sender's groups and re-filing, Trash
and Junk are untouched, every label is triaged within poll interval +
debounce + 5 s of the last fault ending (0 lost), the process stays up with
bounded memory and no unhandled exception, and /health agrees with the
ground truth at every sample. Prints the seed and the figures; exits 1 on any
violation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from mailroom.account.categories import DEFAULT_CATEGORIES_JSON, parse_categories
from mailroom.commands.setup import provision_account
from mailroom.ledger.reading import Filter
from mailroom.ledger.store import Ledger
from mailroom.settings import load_settings
from tests.faults import FaultySandbox
from tests.soak.chaos import Fault, make_faults
from tests.soak.cli_user import CliUser
from tests.soak.service import SOAK_POLICY
from tests.soak.world import World

# The service's promise: bounded memory, a flood of comments included. Idle
# with the pages on it is about 55 MB (bench: web_memory); a flood's bounded
# buffers and a pass over many senders add a few MB more.
RSS_LIMIT_MB = 72.0
RSS_GROWTH_MB = 40.0  # after the first minute
TICK = 0.25
# Quiet after a fault before /health must say pass: a pass, a reconnect, the backoff cap.
QUIET = SOAK_POLICY.poll_interval + SOAK_POLICY.pass_timeout + SOAK_POLICY.backoff_cap
CLI_GRACE = 2.0  # seconds after a command during which a pass may still report its wait


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak")
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--contacts", choices=["carddav", "jmap"], default="carddav", help="the contacts backend"
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="write the figures as JSON (a directory: soak-<contacts>-<seed>.json in it)",
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    print(f"soak: seed {seed}, {args.minutes:g} minutes, {args.contacts} contacts", flush=True)
    figures = run(seed, args.minutes * 60, args.contacts)
    print(json.dumps(figures, indent=2))
    if args.report:
        path = args.report
        if path.is_dir():
            path = path / f"soak-{args.contacts}-{seed}.json"
        path.write_text(json.dumps(figures, indent=2) + "\n")
    ok = not figures["violations"] and figures["lost"] == 0
    print(f"soak: {'PASS' if ok else 'FAIL'} (seed {seed})", flush=True)
    return 0 if ok else 1


def run(
    seed: int,
    seconds: float,
    contacts: str = "carddav",
    defect: str | None = None,
    kinds: list[str] | None = None,
) -> dict[str, object]:
    """One soak; ``defect`` runs a deliberately broken build (``tests.soak.broken``),
    ``kinds`` limits the faults to those named (None: all of them)."""
    # Separate streams: the fault schedule replays exactly for a seed, whatever
    # the user and the hooks drew meanwhile (their timing varies run to run).
    rng = random.Random(f"{seed}:faults")
    user_rng = random.Random(f"{seed}:user")
    categories = parse_categories(DEFAULT_CATEGORIES_JSON)
    interval = SOAK_POLICY.poll_interval
    bound = interval + SOAK_POLICY.debounce + 5.0
    port = free_port()
    # The Cyrus-like flavour, with RFC 9610 added when soaking JMAP contacts.
    jmap = contacts == "jmap"
    with (
        FaultySandbox(flavour="rfc", jmap_contacts=jmap) as sb,
        tempfile.TemporaryDirectory() as tmp,
    ):
        sb.mail.ensure_mailbox("Screener")
        world = World(sb, categories, user_rng)
        world.backlog()
        faults = make_faults(
            sb,
            world,
            random.Random(f"{seed}:hooks"),
            interval,
            SOAK_POLICY.backoff_cap,
            carddav=not jmap,
        )
        if kinds is not None:
            faults = [f for f in faults if f.kind in kinds]
        env = {
            **os.environ,
            **sb.env(contacts),
            "MAILROOM_POLL_INTERVAL": f"{interval:g}",
            "MAILROOM_DEBOUNCE_SECONDS": f"{SOAK_POLICY.debounce:g}",
            "MAILROOM_HTTP_PORT": str(port),
            "MAILROOM_LOG_FORMAT": "json",
            "MAILROOM_TRUST_SENT": world.trust_category,
        }
        env.pop("SOAK_BREAK", None)
        if defect is not None:
            env["SOAK_BREAK"] = defect
        asyncio.run(provision_account(load_settings(env), create_screener=True))
        log_path = Path(tmp) / "service.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.soak.service"], env=env, stderr=log, stdout=log
            )
        cli = CliUser(env, world, random.Random(f"{seed}:cli"))
        try:
            figures = _drive(sb, world, faults, rng, seconds, bound, proc, port, cli)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    world.violations.append("the service did not stop on SIGTERM")
        if proc.returncode != 0:
            world.violations.append(f"the service exited {proc.returncode}")
        figures.update(_check_ledger(world, Path(env["MAILROOM_STATE_DIR"]) / "mailroom.db"))
        text = log_path.read_text(errors="replace")
        for bad in ("Task exception was never retrieved", "Exception in callback", "Traceback"):
            # Tracebacks are only logged for passes that hit the unforeseen;
            # the soak's world holds nothing unforeseen.
            if bad in text:
                world.violations.append(f"service log: {bad!r}")
                line = next(ln for ln in text.splitlines() if bad in ln)
                print(line[:2000], file=sys.stderr)
        figures["seed"] = seed
        figures["contacts"] = contacts
        figures["violations"] = sorted(set(world.violations))[:50]
        return figures


def _check_ledger(world: World, path: Path) -> dict[str, int]:
    if not path.exists():
        world.violations.append(f"ledger: no file at {path}")
        return {}
    ledger, _ = Ledger.open(path)
    try:
        decisions = ledger.history(Filter(limit=10**7))
        if os.environ.get("SOAK_DUMP"):
            for d in reversed(decisions):
                if d.intent.subject == os.environ["SOAK_DUMP"]:
                    print(
                        d.id,
                        d.intent,
                        d.outcome,
                        d.reason,
                        d.effects.joined,
                        d.effects.left,
                        file=sys.stderr,
                    )
        return world.check_decisions(decisions)
    finally:
        ledger.close()


def _drive(
    sb: FaultySandbox,
    world: World,
    faults: list[Fault],
    rng: random.Random,
    seconds: float,
    bound: float,
    proc: subprocess.Popen[bytes],
    port: int,
    cli: CliUser,
) -> dict[str, object]:
    began = time.monotonic()
    # Faults during the first 75 %, then quiet so everything must converge.
    chaos_until = began + seconds * 0.75
    user_until = began + seconds - bound - 2
    end = began + seconds
    health_url = f"http://127.0.0.1:{port}/health"
    injected: Counter[str] = Counter()
    samples: Counter[str] = Counter()
    expected = 0  # samples with a ground truth to compare with
    disagreements: list[str] = []
    active: Fault | None = None
    active_since = 0.0
    next_change = began + 5.0  # let it start cleanly
    quiet_since = began
    last_fault_end = began
    blocking_end = began - 3600.0  # when a fault that blocked triage last ended
    rss: list[float] = []
    next_user = began
    next_cli = began + 5.0
    next_sample = began + 1.0
    with httpx.Client(timeout=2.0) as http:
        while (now := time.monotonic()) < end:
            if proc.poll() is not None:
                world.violations.append(f"the service died (exit {proc.returncode})")
                break
            if now >= next_change:
                if active is not None:
                    active.stop()
                    if active.expect.startswith("fail"):
                        blocking_end = now
                    active, quiet_since, last_fault_end = None, now, now
                    world.fault_active, world.calm_since = False, now
                    # Quiet long enough for "pass" to be the truth for a while
                    # (most samples must have a ground truth to compare with).
                    next_change = now + QUIET + rng.uniform(8.0, 20.0)
                elif now < chaos_until and faults:
                    active, active_since = rng.choice(faults), now
                    world.fault_active = True
                    active.start()
                    injected[active.kind] += 1
                    # Long enough for its ground truth to be checked a good while;
                    # those whose truth depends on timing, briefly.
                    if active.expect == "any":
                        next_change = now + rng.uniform(*active.lasts)
                    else:
                        next_change = now + active.settle + rng.uniform(10.0, 20.0)
                else:
                    next_change = end
            if now >= next_user and now < user_until:
                world.act()
                next_user = now + rng.uniform(0.2, 1.2)
            if now >= next_cli and now < user_until:
                cli.act()
                next_cli = now + rng.uniform(3.0, 8.0)
            if now >= next_sample:
                next_sample = now + 1.0
                rss.append(rss_mb(proc.pid))
                world.sweep()
                got = _health(http, health_url)
                samples[got] += 1
                want = _expected(
                    world, active, now - active_since, now - quiet_since, now - blocking_end
                )
                if want == "pass" and (cli.running or now - cli.ended < CLI_GRACE):
                    # A pass waits for the command: /health says so ("warn").
                    want = "up"
                expected += want is not None
                if want is not None and not _agrees(want, got):
                    fault = active.kind if active else "none"
                    disagreements.append(
                        f"t={now - began:.0f}s fault={fault}: want {want}, got {got}"
                    )
            time.sleep(TICK)
    if active is not None:
        active.stop()
        last_fault_end = time.monotonic()
    cli.join()
    # Settle: every label must be triaged within the bound after the last fault.
    deadline = max(last_fault_end, max((x.applied_at for x in world.ledger), default=0)) + bound
    while time.monotonic() < deadline and world.pending():
        time.sleep(TICK)
    lost = world.pending()
    for x in lost:
        world.violations.append(f"lost: {x.email_id} {sorted(x.labels)} from {x.sender}")
    late = [
        x
        for x in world.ledger
        if x.settled_at is not None
        and x.settled_at > max(x.applied_at, last_fault_end) + bound
        and x.applied_at > last_fault_end
    ]
    for x in late:
        took = (x.settled_at or 0.0) - x.applied_at
        world.violations.append(f"late: {x.email_id} took {took:.1f} s")
    world.violations.extend(disagreements)
    warm = rss[len(rss) // 4 :] or rss
    if rss and (max(rss) > RSS_LIMIT_MB or max(warm) - min(warm) > RSS_GROWTH_MB):
        world.violations.append(f"RSS {min(rss):.0f}-{max(rss):.0f} MB")
    settled = Counter(x.how for x in world.ledger)
    return {
        "minutes": round((time.monotonic() - began) / 60, 1),
        "faults_injected": sum(injected.values()),
        "faults_by_kind": dict(sorted(injected.items())),
        "labels_applied": len(world.ledger),
        "labels_triaged": settled["triaged"],
        "conflicts_flagged": settled["flagged"] + settled["flagged-resolved"],
        "deleted_mid_pass": world.deleted_mid_pass,
        "relabels": world.relabels,
        "sent_back": settled["sent back"],
        "odd_vcards": world.odd_cards,
        "cli_commands": dict(sorted(cli.runs.items())),
        "lost": len(lost),
        "health_samples": dict(samples),
        "health_samples_with_truth": round(expected / max(1, sum(samples.values())), 2),
        "rss_mb_max": round(max(rss), 1) if rss else None,
    }


def _health(http: httpx.Client, url: str) -> str:
    try:
        return str(http.get(url).json().get("status"))
    except (httpx.HTTPError, ValueError):
        return "unreachable"


def _expected(
    world: World, fault: Fault | None, active_for: float, quiet_for: float, unblocked_for: float
) -> str | None:
    # After a fault that blocked triage, /health reports it until a pass has
    # succeeded again: up to two intervals and a pass (the retry budget and the
    # backoff of a failing pass included). Only then is "up" the truth.
    recovered = unblocked_for >= 2 * SOAK_POLICY.poll_interval + SOAK_POLICY.pass_timeout
    if fault is None:
        # Quiet long enough for a pass, a reconnect and the backoff cap.
        return "pass" if quiet_for >= QUIET and recovered else None
    if fault.expect == "up" and not recovered:
        return None
    if active_for < fault.settle:
        return None
    if fault.expect == "fail-if-pending":
        old = [x for x in world.pending() if x.applied_at < time.monotonic() - fault.settle]
        return "fail" if old else None
    return None if fault.expect == "any" else fault.expect


def _agrees(want: str, got: str) -> bool:
    if want == "up":
        return got in ("pass", "warn")
    return want == got


if __name__ == "__main__":
    sys.exit(main())
