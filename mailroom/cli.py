"""The ``mailroom`` command line: a parser, and one small handler per command.

Each handler reads its arguments and calls ``mailroom.commands`` (or the
service); an error Mailroom names (``MailroomError``) is one line on standard
error and exit 1, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys
import threading
from collections.abc import Callable, Sequence

from mailroom.errors import MailroomError
from mailroom.settings import Settings, SettingsError, load_settings

EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    from mailroom.commands.arguments import build_parser

    args = build_parser().parse_args(argv)
    handler = HANDLERS[args.command]
    try:
        return handler(args)
    except MailroomError as exc:
        print(f"mailroom {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mailroom {args.command}: interrupted", file=sys.stderr)
        return 130


def _with_settings(
    run: Callable[[Settings, argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """A command that needs the settings: invalid ones are listed, exit 2."""

    def handler(args: argparse.Namespace) -> int:
        settings = _settings()
        if settings is None:
            return EXIT_CONFIG
        return run(settings, args)

    return handler


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from mailroom.observe.logging import setup_logging
    from mailroom.service import run_until_signalled

    setup_logging(settings.log_level, settings.log_format)
    return asyncio.run(run_until_signalled(settings, dry_run=args.dry_run))


def _check(settings: Settings, args: argparse.Namespace) -> int:
    from mailroom.commands.check import run_check
    from mailroom.commands.report import Report

    return asyncio.run(run_check(settings, Report()))


def _setup(settings: Settings, args: argparse.Namespace) -> int:
    from mailroom.commands.report import Report
    from mailroom.commands.setup import run_setup

    return asyncio.run(
        run_setup(settings, apply=args.apply, create_screener=args.create_screener, report=Report())
    )


def _screener(settings: Settings, args: argparse.Namespace) -> int:
    from mailroom.commands.screener import run_screener

    return asyncio.run(run_screener(settings, sys.stdout, sys.stderr, as_json=args.json))


def _triage(settings: Settings, args: argparse.Namespace) -> int:
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


def _undo(args: argparse.Namespace) -> int:
    early = _undo_first(args.sender)
    if early is not None:
        return early

    def undo(settings: Settings, args: argparse.Namespace) -> int:
        from mailroom.commands.undo import run_undo

        return asyncio.run(
            run_undo(settings, args.sender, apply=args.apply, out=sys.stdout, err=sys.stderr)
        )

    return _with_settings(undo)(args)


def _reset(settings: Settings, args: argparse.Namespace) -> int:
    from mailroom.commands.undo import run_reset

    return asyncio.run(run_reset(settings, apply=args.apply, out=sys.stdout, err=sys.stderr))


def _status(args: argparse.Namespace) -> int:
    from mailroom.commands.status import run_status

    return run_status(args.url, healthcheck=args.healthcheck)


def _systemd_unit(args: argparse.Namespace) -> int:
    from mailroom.commands.unit import UnitError, UnitKind, render_unit

    kind = UnitKind.USER if args.user else UnitKind.TEMPLATE if args.template else None
    try:
        print(render_unit(kind=kind or UnitKind.SYSTEM), end="")
    except UnitError as exc:
        print(f"mailroom systemd-unit: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def _monitoring(args: argparse.Namespace) -> int:
    if args.what == "rules":
        from mailroom.monitoring.rules import render_rules

        print(render_rules(args.job), end="")
    else:
        from mailroom.monitoring.dashboard import render_dashboard

        print(render_dashboard(), end="")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mailroom.sandbox.demo import run_demo

    return run_demo(
        poll_interval=args.poll_interval,
        debounce=args.debounce,
        pause=args.pause,
        keep_running=args.keep_running,
    )


def _sandbox_command(args: argparse.Namespace) -> int:
    tls = None
    if (args.certificate is None) != (args.key is None):
        print("mailroom sandbox: --certificate and --key go together", file=sys.stderr)
        return EXIT_CONFIG
    if args.certificate is not None:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            tls.load_cert_chain(args.certificate, args.key)
        except (OSError, ssl.SSLError) as exc:
            print(f"mailroom sandbox: cannot use the certificate: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    return _sandbox(args.host, args.port, args.flavour, args.seed, tls, args.public_url)


def _history(args: argparse.Namespace) -> int:
    from mailroom.commands.history import parse_since, run_history
    from mailroom.ledger.reading import Filter
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


def _sandbox(
    host: str,
    port: int,
    flavour: str,
    seed: bool,
    tls: ssl.SSLContext | None = None,
    public_url: str | None = None,
) -> int:
    from mailroom.sandbox.demo import seed as seed_mail
    from mailroom.sandbox.server import Sandbox

    sandbox = Sandbox(
        host=host,
        port=port,
        flavour=flavour,  # type: ignore[arg-type]
        tls=tls,
        public_url=public_url,
    )
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


def _web_password(args: argparse.Namespace) -> int:
    from mailroom.commands.web_password import run_web_password

    return run_web_password(sys.stdin, sys.stdout, sys.stderr)


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _with_settings(_run),
    "check": _with_settings(_check),
    "setup": _with_settings(_setup),
    "screener": _with_settings(_screener),
    "triage": _with_settings(_triage),
    "history": _history,
    "undo": _undo,
    "reset": _with_settings(_reset),
    "status": _status,
    "web-password": _web_password,
    "systemd-unit": _systemd_unit,
    "monitoring": _monitoring,
    "sandbox": _sandbox_command,
    "demo": _demo,
}
