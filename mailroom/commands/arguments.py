"""The command line's arguments: every command and option with its help, the
settings Mailroom needs, and the exit statuses (``mailroom --help``)."""

from __future__ import annotations

import argparse

from mailroom import __version__

DESCRIPTION = """\
Mailroom: HEY's Screener for Fastmail and any JMAP server. Put one triage label
(@ToImbox, @ToFeed, @ToPaperTrail, @ToJail, @ToPerson) on one email in the
Screener; Mailroom files the sender and all their mail, and records the decision.

Needs MAILROOM_JMAP_TOKEN (or MAILROOM_JMAP_TOKEN_FILE): a Fastmail API token with
the Mail and Contacts scopes. MAILROOM_JMAP_SESSION_URL defaults to Fastmail's
(https://api.fastmail.com/jmap/session). Every setting: docs/configuration.md.
First time: `mailroom setup`, then `mailroom check`, then `mailroom run`."""

EPILOG = """\
exit status:
  0  done (or, for check, all is well)
  1  something failed in the account, on the network or in the ledger (said on stderr)
  2  invalid settings or arguments, or an account run refuses (systemd does not restart it)
  3  status: nothing answered, or not Mailroom's /health
 130 interrupted"""

APPLY_HELP = "do it (default: a dry run that prints the plan)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailroom",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mailroom {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=text,
            description=text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    run = command("run", "run the triage service (settings from MAILROOM_* variables)")
    run.add_argument(
        "--dry-run", action="store_true", help="connect, listen and plan passes; write nothing"
    )
    command("check", "check settings, credentials, account and push; writes nothing")
    setup = command("setup", "create the mailboxes and groups the settings need; print the rules")
    setup.add_argument("--apply", action="store_true", help="create them (default: list them)")
    setup.add_argument(
        "--create-screener", action="store_true", help="also create the Screener mailbox"
    )
    screener = command("screener", "who is waiting in the Screener (read from the account)")
    screener.add_argument("--json", action="store_true", help="as JSON")
    decide = command(
        "triage", "put a sender, a domain or a mailing list in a category without an email"
    )
    decide.add_argument(
        "sender",
        help="the sender's address, @domain for the domain and its subdomains, or "
        "list:<list-id> for a mailing list (its List-Id)",
    )
    decide.add_argument("category", help="a category's name or label (Feed, @ToFeed)")
    decide.add_argument("--apply", action="store_true", help=APPLY_HELP)
    decide.add_argument(
        "--force", action="store_true", help="decide for a shared mail provider's domain anyway"
    )
    history = command("history", "the decisions Mailroom made, newest first (from the ledger)")
    history.add_argument(
        "subject",
        nargs="?",
        help="a sender (its whole trail), @domain (it and its subdomains) or list:<list-id>",
    )
    history.add_argument("--category", help="only decisions into this category")
    history.add_argument("--since", help="only decisions from this date (2026-11-30) on")
    history.add_argument("--limit", type=int, default=1000, help="at most this many (1000)")
    history.add_argument("--json", action="store_true", help="as JSON")
    undo = command("undo", "take back the latest decision on a sender, a domain or a mailing list")
    undo.add_argument(
        "sender",
        help="the sender's address, @domain for a domain's rule, or list:<list-id> for a list's",
    )
    undo.add_argument("--apply", action="store_true", help=APPLY_HELP)
    reset = command("reset", "take back every decision, for uninstalling or starting over")
    reset.add_argument("--apply", action="store_true", help=APPLY_HELP)
    status = command("status", "show a running instance's /health, for a person")
    status.add_argument(
        "--url",
        help="its address: host:port, its base URL or its /health URL "
        "(default: from MAILROOM_HTTP_HOST and MAILROOM_HTTP_PORT)",
    )
    status.add_argument(
        "--healthcheck",
        action="store_true",
        help="for a container's HEALTHCHECK: one line; exit 0 while triage works "
        "(pass or warn), 1 when it has stopped or nothing answers",
    )
    command(
        "web-password",
        "print the hash of a password for the web pages (MAILROOM_WEB_PASSWORD_FILE); "
        "reads it from a prompt, or from standard input's first line",
    )
    unit = command("systemd-unit", "print the systemd unit for this installation")
    shape = unit.add_mutually_exclusive_group()
    shape.add_argument(
        "--user", action="store_true", help="a user unit (systemctl --user), no root"
    )
    shape.add_argument(
        "--template",
        action="store_true",
        help="mailroom@.service: one instance per account, /etc/mailroom/NAME.env",
    )
    monitoring = command("monitoring", "print the Prometheus alert rules or the Grafana dashboard")
    monitoring.add_argument("what", choices=("rules", "dashboard"), help="which to print")
    monitoring.add_argument(
        "--job", default="mailroom", help="the Prometheus job scraping Mailroom (rules)"
    )
    sandbox = command("sandbox", "run the local Fastmail stand-in (for trying Mailroom)")
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=8765, help="port to listen on (8765)")
    sandbox.add_argument(
        "--flavour",
        choices=("fastmail", "rfc"),
        default="fastmail",
        help="fastmail: no pings, as Fastmail; rfc: pings as RFC 8620 asks",
    )
    sandbox.add_argument("--seed", action="store_true", help="fill the Screener with demo mail")
    sandbox.add_argument(
        "--certificate",
        help="serve HTTPS with this certificate (PEM; with --key): for a service on "
        "another host or container, which refuses plain http beyond loopback",
    )
    sandbox.add_argument("--key", help="the certificate's private key (PEM)")
    sandbox.add_argument(
        "--public-url",
        help="the address the service reaches it at, for the session's URLs "
        "(https://sandbox:8765; default: where it listens)",
    )
    demo = command("demo", "the stand-in, the service and a simulated user labelling mail")
    demo.add_argument(
        "--poll-interval", type=float, default=60.0, help="the safety-net poll, seconds (60)"
    )
    demo.add_argument("--debounce", type=float, default=3.0, help="the push debounce, seconds (3)")
    demo.add_argument("--pause", type=float, default=2.0, help="seconds between user actions (2)")
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the stand-in and the service running afterwards (Ctrl-C stops them)",
    )
    return parser
