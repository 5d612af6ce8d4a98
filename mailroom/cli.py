"""Command line: run, check, setup, status, history, triage, undo, reset, screener,
systemd-unit, monitoring, sandbox, demo."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from collections.abc import Sequence

from mailroom import __version__
from mailroom.settings import Settings, SettingsError, load_settings

EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailroom", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mailroom {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run the triage service (settings from MAILROOM_* variables)"
    )
    run.add_argument(
        "--dry-run", action="store_true", help="connect, listen and poll, but write nothing"
    )
    commands.add_parser(
        "check", help="check settings, credentials, account and push; writes nothing"
    )
    setup = commands.add_parser(
        "setup", help="create the mailboxes and groups the settings need; print the rules"
    )
    setup.add_argument("--apply", action="store_true", help="create them (default: plan only)")
    setup.add_argument(
        "--create-screener", action="store_true", help="also create the Screener mailbox"
    )
    status = commands.add_parser("status", help="show a running instance's /health")
    status.add_argument("--url", help="its base or /health URL (default: from MAILROOM_HTTP_*)")
    unit = commands.add_parser("systemd-unit", help="print the systemd unit for this installation")
    shape = unit.add_mutually_exclusive_group()
    shape.add_argument(
        "--user", action="store_true", help="a user unit (systemctl --user), no root"
    )
    shape.add_argument(
        "--template",
        action="store_true",
        help="mailroom@.service: one instance per account, /etc/mailroom/NAME.env",
    )
    history = commands.add_parser(
        "history", help="the decisions Mailroom made, newest first (from the ledger)"
    )
    history.add_argument(
        "subject", nargs="?", help="a sender (its whole trail) or @domain (it and its subdomains)"
    )
    history.add_argument("--category", help="only decisions into this category")
    history.add_argument("--since", help="only decisions from this date (2026-11-30) on")
    history.add_argument("--limit", type=int, default=1000, help="at most this many (1000)")
    history.add_argument("--json", action="store_true", help="as JSON")
    decide = commands.add_parser(
        "triage", help="put a sender in a category without an email (dry by default)"
    )
    decide.add_argument(
        "sender", help="the sender's address, or @domain for the domain and its subdomains"
    )
    decide.add_argument("category", help="a category's name or label (Feed, @ToFeed)")
    decide.add_argument("--apply", action="store_true", help="do it (default: print the plan)")
    decide.add_argument(
        "--force", action="store_true", help="decide for a shared mail provider's domain anyway"
    )
    undo = commands.add_parser("undo", help="take back a sender's latest decision (dry by default)")
    undo.add_argument("sender", help="the sender's address, or @domain for a domain's rule")
    undo.add_argument("--apply", action="store_true", help="do it (default: print the plan)")
    reset = commands.add_parser(
        "reset", help="take back every decision, for starting over (dry by default)"
    )
    reset.add_argument("--apply", action="store_true", help="do it (default: print the plan)")
    screener = commands.add_parser(
        "screener", help="who is waiting in the Screener (read from the account)"
    )
    screener.add_argument("--json", action="store_true", help="as JSON")
    monitoring = commands.add_parser(
        "monitoring", help="print the Prometheus alert rules or the Grafana dashboard"
    )
    monitoring.add_argument("what", choices=("rules", "dashboard"))
    monitoring.add_argument(
        "--job", default="mailroom", help="the Prometheus job scraping Mailroom (rules)"
    )
    sandbox = commands.add_parser("sandbox", help="run the local Fastmail stand-in")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument("--flavour", choices=("fastmail", "rfc"), default="fastmail")
    sandbox.add_argument("--seed", action="store_true", help="fill the Screener with demo mail")
    demo = commands.add_parser("demo", help="stand-in + service + a simulated user")
    demo.add_argument("--poll-interval", type=float, default=60.0)
    demo.add_argument("--debounce", type=float, default=3.0)
    demo.add_argument("--pause", type=float, default=2.0, help="seconds between user actions")
    demo.add_argument("--keep-running", action="store_true")
    args = parser.parse_args(argv)

    if args.command == "status":
        from mailroom.commands.status import run_status

        return run_status(args.url)
    if args.command == "systemd-unit":
        from mailroom.commands.unit import UnitError, UnitKind, render_unit

        kind = UnitKind.USER if args.user else UnitKind.TEMPLATE if args.template else None
        try:
            print(render_unit(kind=kind or UnitKind.SYSTEM), end="")
        except UnitError as exc:
            print(f"mailroom systemd-unit: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "history":
        return _history(args)
    if args.command == "monitoring":
        if args.what == "rules":
            from mailroom.monitoring.rules import render_rules

            print(render_rules(args.job), end="")
        else:
            from mailroom.monitoring.dashboard import render_dashboard

            print(render_dashboard(), end="")
        return 0
    if args.command == "undo":
        early = _undo_first(args.sender)
        if early is not None:
            return early
    if args.command in ("run", "check", "setup", "screener", "undo", "reset", "triage"):
        settings = _settings()
        if settings is None:
            return EXIT_CONFIG
        if args.command == "triage":
            from mailroom.commands.triage import run_triage

            return asyncio.run(
                run_triage(
                    settings,
                    args.sender,
                    args.category,
                    apply=args.apply,
                    out=sys.stdout,
                    err=sys.stderr,
                    force=args.force,
                )
            )
        if args.command == "undo":
            from mailroom.commands.undo import run_undo

            return asyncio.run(
                run_undo(settings, args.sender, apply=args.apply, out=sys.stdout, err=sys.stderr)
            )
        if args.command == "reset":
            from mailroom.commands.undo import run_reset

            return asyncio.run(
                run_reset(settings, apply=args.apply, out=sys.stdout, err=sys.stderr)
            )
        if args.command == "screener":
            from mailroom.commands.screener import run_screener

            return asyncio.run(run_screener(settings, sys.stdout, sys.stderr, as_json=args.json))
        if args.command == "check":
            from mailroom.commands.check import run_check
            from mailroom.commands.report import Report

            return asyncio.run(run_check(settings, Report()))
        if args.command == "setup":
            from mailroom.commands.report import Report
            from mailroom.commands.setup import run_setup

            return asyncio.run(
                run_setup(
                    settings,
                    apply=args.apply,
                    create_screener=args.create_screener,
                    report=Report(),
                )
            )
        from mailroom.observe.logging import setup_logging
        from mailroom.service import run_until_signalled

        setup_logging(settings.log_level, settings.log_format)
        return asyncio.run(run_until_signalled(settings, dry_run=args.dry_run))
    if args.command == "sandbox":
        return _sandbox(args.host, args.port, args.flavour, args.seed)
    from mailroom.sandbox.demo import run_demo

    return run_demo(
        poll_interval=args.poll_interval,
        debounce=args.debounce,
        pause=args.pause,
        keep_running=args.keep_running,
    )


def _history(args: argparse.Namespace) -> int:
    from mailroom.commands.history import parse_since, run_history
    from mailroom.ledger.store import Filter
    from mailroom.settings import load_ledger_path

    try:
        path = load_ledger_path()
    except SettingsError as exc:
        print("mailroom: invalid settings:", *exc.problems, sep="\n  ", file=sys.stderr)
        return EXIT_CONFIG
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        print(f"mailroom history: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not 1 <= args.limit <= 1_000_000:
        print("mailroom history: --limit: expected 1 to 1000000", file=sys.stderr)
        return EXIT_CONFIG
    which = Filter(args.subject, args.category, since, args.limit)
    return run_history(path, which, as_json=args.json, out=sys.stdout, err=sys.stderr)


def _undo_first(subject: str) -> int | None:
    """``undo``'s checks that need no credentials: the subject's form, and whether
    the ledger holds anything to undo (then there is no token to ask for)."""
    from mailroom.commands.undo import nothing_to_undo, subject_problem
    from mailroom.settings import load_ledger_path

    problem = subject_problem(subject)
    if problem is not None:
        print(f"mailroom undo: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        path = load_ledger_path()
    except SettingsError:
        return None  # the full settings say what is wrong
    said = nothing_to_undo(path, subject)
    if said is None:
        return None
    print(said)
    return 0


def _settings() -> Settings | None:
    try:
        return load_settings()
    except SettingsError as exc:
        print("mailroom: invalid settings:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def _sandbox(host: str, port: int, flavour: str, seed: bool) -> int:
    from mailroom.sandbox.demo import seed as seed_mail
    from mailroom.sandbox.server import Sandbox

    sandbox = Sandbox(host=host, port=port, flavour=flavour)  # type: ignore[arg-type]
    try:
        sandbox.start()
    except OSError as exc:
        print(f"mailroom sandbox: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    if seed:
        seed_mail(sandbox)
    sandbox.mail.ensure_mailbox("Screener")
    print(f"# Mailroom stand-in ({flavour} flavour) listening on {sandbox.url}")
    print("# Point the service at it with (contacts over JMAP, the token alone):")
    for key, value in sandbox.env("jmap").items():
        print(f"export {key}={value}")
    print("# It serves CardDAV too (MAILROOM_CONTACTS=carddav):")
    for key, value in sandbox.env("carddav").items():
        if key.startswith("MAILROOM_CARDDAV"):
            print(f"# export {key}={value}")
    print(
        f"# Deliver mail: curl -H 'Authorization: Bearer {sandbox.token}' "
        f"""-d '{{"from": "someone@example.com"}}' {sandbox.url}/_sandbox/deliver"""
    )
    sys.stdout.flush()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    sandbox.stop()
    return 0
