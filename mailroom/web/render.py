"""Answers as HTML: a template filled in, with the headers every page carries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import HTMLResponse

from mailroom import __version__
from mailroom.web.guard import CSP, SECURITY_HEADERS

if TYPE_CHECKING:
    from mailroom.web.context import WebContext
    from mailroom.web.login import Visitor


def page(
    ctx: WebContext,
    template: str,
    visitor: Visitor | None,
    *,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    values.setdefault("current", "")  # which page the navigation marks
    values.setdefault("error", None)
    body = ctx.env.get_template(template).render(
        visitor=visitor,
        csrf=visitor.csrf if visitor else "",
        version=__version__,
        dry_run=ctx.telemetry.record.dry_run,
        **values,
    )
    return HTMLResponse(body, status_code=status, headers=headers())


def headers(csp: str = CSP) -> dict[str, str]:
    return {**SECURITY_HEADERS, "Content-Security-Policy": csp}


def refused(ctx: WebContext, why: str, status: int = 403) -> HTMLResponse:
    return page(ctx, "refused.html", None, status=status, why=why)
