"""Parse an HTTP ``Retry-After`` value (RFC 9110 §10.2.3)."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait, or None when the header is absent or unusable.

    Accepts delay-seconds or an HTTP-date; a date in the past means 0.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        # Bounded before int(): a 5,000-digit value must not raise.
        digits = text.lstrip("0") or "0"
        return float(int(digits)) if len(digits) <= 12 else 1e12
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())
