"""The pages behind the login: the Screener, deciding, taking back, history
and status. Every change is a POST with the session's token from one of the
pages' own origins, answered by a redirect (so reloading never repeats it)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from mailroom.account.categories import Category
from mailroom.commands.undo import subject_problem
from mailroom.core.redact import scrub
from mailroom.core.words import count
from mailroom.domains.names import normal
from mailroom.errors import MailroomError
from mailroom.ledger.model import DecisionKind
from mailroom.ledger.reading import Filter
from mailroom.lists.listid import MAX_ID, SUBJECT_PREFIX, list_id, parse_subject
from mailroom.observe.status_page import render
from mailroom.web.auth import same_token
from mailroom.web.context import WebContext
from mailroom.web.decisions import MAX_SENDERS, Done
from mailroom.web.guard import STATUS_CSP, change_refused
from mailroom.web.login import Visitor, visitor, with_cookie
from mailroom.web.render import headers, page, refused
from mailroom.web.screener import ScreenerView

log = logging.getLogger(__name__)

PER_PAGE = 100  # senders or decisions a page
MAX_PAGE = 1000
MAX_FORM_FIELDS = MAX_SENDERS * 2 + 8
MAX_ADDRESS = 320


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        return 1
    return max(1, min(MAX_PAGE, int(raw)))


def _answer(response: Response, who: Visitor, ctx: WebContext) -> Response:
    return with_cookie(response, ctx, who.new_token) if who.new_token else response


def _to_login() -> Response:
    return RedirectResponse("/login", status_code=303)


async def screener(request: Request, ctx: WebContext) -> Response:
    who = visitor(request, ctx)
    if who is None:
        return _to_login()
    if ctx.screener is None:
        return _answer(page(ctx, "connecting.html", who, status=503), who, ctx)
    try:
        view, spent = await ctx.screener.view()
    except MailroomError as exc:
        log.warning("cannot read the Screener", extra={"fields": {"error": str(exc)}})
        return _answer(page(ctx, "connecting.html", who, status=503, error=str(exc)), who, ctx)
    pages = max(1, -(-len(view.senders) // PER_PAGE))  # the lists: on the first page
    number = min(_page_number(request), pages)
    start = (number - 1) * PER_PAGE
    shown = view.senders[start : start + PER_PAGE]
    try:
        await ctx.screener.mark_written_to(shown, spent)
    except MailroomError as exc:  # the page still shows who waits
        log.warning("cannot read whom you wrote to", extra={"fields": {"error": str(exc)}})
    session = who.session
    notes, failures, undoable = session.notes, session.failures, session.undoable
    session.notes, session.failures, session.undoable = [], [], []
    response = page(
        ctx,
        "screener.html",
        who,
        view=view,
        senders=shown,
        lists=view.lists if number == 1 else [],
        number=number,
        pages=pages,
        waiting=_waiting(view),
        categories=list(enumerate(ctx.categories)),
        notes=notes,
        failures=failures,
        undoable=undoable,
        trust=ctx.trust_sent,
    )
    return _answer(response, who, ctx)


def _waiting(view: ScreenerView) -> str:
    said = count(len(view.senders), "sender")
    return f"{said}, {count(len(view.lists), 'list')}" if view.lists else said


async def _change(request: Request, ctx: WebContext) -> tuple[Visitor, FormData] | Response:
    """The visitor and the form of a change, or the answer refusing it."""
    who = visitor(request, ctx)
    why = change_refused(request.headers, ctx.origins)
    if why is not None:
        log.warning("change refused", extra={"fields": {"why": why}})
        return refused(ctx, why)
    if who is None:
        return _to_login()
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=1024)
    token = form.get("csrf")
    if not same_token(who.csrf, token if isinstance(token, str) else None):
        log.warning("change refused", extra={"fields": {"why": "no or a wrong CSRF token"}})
        return refused(ctx, "The form is out of date (or not ours): reload the page and try again.")
    return who, form


def _addresses(values: Sequence[object]) -> list[str] | None:
    out = []
    for value in values:
        if not isinstance(value, str) or len(value) > MAX_ADDRESS or "@" not in value:
            return None
        address = value.strip().lower()
        if subject_problem(address) is not None:
            return None
        out.append(address)
    return list(dict.fromkeys(out))


async def decide(request: Request, ctx: WebContext) -> Response:
    got = await _change(request, ctx)
    if isinstance(got, Response):
        return got
    who, form = got
    listed = form.get("list")
    if isinstance(listed, str) and ":" in listed:  # a list's button: "<category>:<list id>"
        return await _decide_list(ctx, who, *listed.split(":", 1))
    row = form.get("decide")
    if isinstance(row, str) and ":" in row:  # one row's button: "<category>:<address>"
        index, _, address = row.partition(":")
        wanted: Sequence[object] = [address]
    else:
        index = str(form.get("category", ""))
        wanted = form.getlist("sender")
    category = _category(ctx, index)
    senders = _addresses(wanted)
    if category is None or senders is None or len(senders) > MAX_SENDERS:
        return refused(ctx, "That form does not name a category and senders.", status=400)
    if not senders:
        who.session.notes.append("Tick the senders to decide first, or use a row's buttons.")
        return _answer(RedirectResponse("/screener", status_code=303), who, ctx)
    if ctx.decisions is None:
        return _not_yet(ctx, who)
    by_domain = set(_addresses(form.getlist("domain")) or [])
    done = Done()
    for whole, group in (
        (True, [s for s in senders if s in by_domain]),
        (False, [s for s in senders if s not in by_domain]),
    ):
        if group:
            part = await ctx.decisions.decide(group, category, whole_domain=whole)
            done.done += part.done
            done.failed += part.failed
    _remember(who, done, f"into {category.name}")
    return _answer(RedirectResponse("/screener", status_code=303), who, ctx)


async def _decide_list(ctx: WebContext, who: Visitor, index: str, raw: str) -> Response:
    category = _category(ctx, index)
    ident = list_id(raw) if len(raw) <= MAX_ID else None
    if category is None or ident is None:
        return refused(ctx, "That form does not name a category and a mailing list.", status=400)
    if ctx.decisions is None:
        return _not_yet(ctx, who)
    done = await ctx.decisions.decide_list(ident, category)
    _remember(who, done, f"into {category.name} (its posts now and later)")
    return _answer(RedirectResponse("/screener", status_code=303), who, ctx)


def _category(ctx: WebContext, index: str) -> Category | None:
    if index.isascii() and index.isdigit() and int(index) < len(ctx.categories):
        return ctx.categories[int(index)]
    return None


def _not_yet(ctx: WebContext, who: Visitor) -> Response:
    """No decisions: not connected yet, or a dry run (which writes nothing)."""
    if ctx.screener is not None:
        why = "This is a dry run (mailroom run --dry-run): nothing is written to the account."
        return _answer(refused(ctx, why, status=409), who, ctx)
    return _answer(page(ctx, "connecting.html", who, status=503), who, ctx)


def _remember(who: Visitor, done: Done, what: str) -> None:
    session = who.session
    if done.done:
        session.notes.append(f"Decided {', '.join(done.done)} {what}.")
        session.undoable = done.done
    session.failures = done.failed


async def undo(request: Request, ctx: WebContext) -> Response:
    got = await _change(request, ctx)
    if isinstance(got, Response):
        return got
    who, form = got
    subject = str(form.get("subject", "")).strip().lower()
    back = "/history" if form.get("back") == "history" else "/screener"
    if subject_problem(subject) is not None:
        return refused(ctx, "That form does not name a sender or a domain.", status=400)
    if subject.startswith("@"):
        subject = f"@{normal(subject)}"
    elif (ident := parse_subject(subject)) is not None:
        subject = SUBJECT_PREFIX + ident
    if ctx.decisions is None:
        return _not_yet(ctx, who)
    done = await ctx.decisions.undo(subject)
    if done.done:
        who.session.notes.append(f"Took back the decision on {subject}.")
    who.session.failures = done.failed
    return _answer(RedirectResponse(back, status_code=303), who, ctx)


async def history(request: Request, ctx: WebContext) -> Response:
    who = visitor(request, ctx)
    if who is None:
        return _to_login()
    ledger = ctx.ledger
    query = request.query_params.get("q", "").strip().lower()[:MAX_ADDRESS]
    wanted = request.query_params.get("category", "")
    category = wanted if any(c.name == wanted for c in ctx.categories) else None
    subject = None
    problem = None
    if query.startswith(SUBJECT_PREFIX):
        ident = parse_subject(query)
        subject = SUBJECT_PREFIX + ident if ident else query
        problem = subject_problem(query)
    elif query:
        subject = query if "@" in query.lstrip("@") else f"@{query.lstrip('@')}"
        problem = subject_problem(subject)
        if subject.startswith("@") and problem is None:
            subject = f"@{normal(subject)}"
    number = _page_number(request)
    decisions, standing, rules = [], set(), []
    if ledger is not None and problem is None:
        found = ledger.history(
            Filter(subject=subject, category=category, limit=number * PER_PAGE + 1)
        )
        decisions = found[(number - 1) * PER_PAGE : number * PER_PAGE]
        more = len(found) > number * PER_PAGE
        stand = ledger.standing(limit=100_000)
        lists = ledger.list_rules()
        standing = {d.id for d in stand} | {d.id for d in lists.values()}
        rules = [d for d in stand if d.intent.subject.startswith("@")] + list(lists.values())
    else:
        more = False
    session = who.session
    notes, failures = session.notes, session.failures
    session.notes, session.failures = [], []
    response = page(
        ctx,
        "history.html",
        who,
        decisions=decisions,
        standing=standing,
        rules=rules,
        query=query,
        problem=problem,
        category=category or "",
        categories=[c.name for c in ctx.categories],
        number=number,
        more=more,
        ledger=ledger is not None,
        notes=notes,
        failures=failures,
        undo_kind=DecisionKind.UNDO,
    )
    return _answer(response, who, ctx)


def status_page(ctx: WebContext, *, with_senders: bool, nav: str = "") -> Response:
    view = ctx.telemetry.page()
    if not with_senders:
        from dataclasses import replace

        view = replace(view, senders=())
    nonce = secrets.token_urlsafe(16)
    html = scrub(render(view, nonce=nonce, nav=nav))
    return HTMLResponse(html, headers=headers(STATUS_CSP.format(nonce=nonce)))


NAV = (
    '<nav class="nav"><a href="/screener">Screener</a> · <a href="/history">History</a> · '
    '<a href="/status" aria-current="page">Status</a></nav>'
)


async def status(request: Request, ctx: WebContext) -> Response:
    who = visitor(request, ctx)
    if who is None:
        return _to_login()
    return _answer(status_page(ctx, with_senders=True, nav=NAV), who, ctx)
