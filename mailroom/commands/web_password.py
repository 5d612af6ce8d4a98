"""``mailroom web-password``: the line for ``MAILROOM_WEB_PASSWORD_FILE``.

Reads the password from a prompt (asked twice) or, when standard input is not
a terminal, its first line; prints its argon2 hash, never the password.
"""

from __future__ import annotations

import getpass
from typing import TextIO

from mailroom.web.auth import MAX_PASSWORD, hash_password

MIN_PASSWORD = 8
EXIT_ERROR = 2


def run_web_password(stdin: TextIO, out: TextIO, err: TextIO) -> int:
    if stdin.isatty():
        password = getpass.getpass("Password for the web pages: ")
        if getpass.getpass("The same again: ") != password:
            print("mailroom web-password: the two differ; nothing printed", file=err)
            return EXIT_ERROR
    else:
        password = stdin.readline(MAX_PASSWORD + 2).rstrip("\r\n")
    problem = _problem(password)
    if problem is not None:
        print(f"mailroom web-password: {problem}", file=err)
        return EXIT_ERROR
    print(hash_password(password), file=out)
    if out.isatty():
        print(
            "# put that line in a file only Mailroom can read, and name the file in "
            "MAILROOM_WEB_PASSWORD_FILE",
            file=err,
        )
    return 0


def _problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"the password is shorter than {MIN_PASSWORD} characters: choose a longer one"
    if len(password) > MAX_PASSWORD:
        return f"the password is longer than {MAX_PASSWORD} characters"
    if password != password.strip():
        return "the password begins or ends with a space (often a copying mistake)"
    return None
