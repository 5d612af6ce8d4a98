"""How each transition of the connection machine reads, in the log and in
systemd's one-line status (what ``systemctl status`` shows).

Routine changes stay quiet: Cyrus closing every stream after a while is a
DEBUG line, and a retry from DEGRADED failing the same way as the last is
not news. Losing push and getting it back are.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

log = logging.getLogger(__name__)


class Narrator:
    def __init__(self, poll_interval: float, degraded_interval: float) -> None:
        self.poll_interval = poll_interval
        self.degraded_interval = degraded_interval
        self._outage = False  # went through BACKOFF/DEGRADED since last CONNECTED
        self._renewing = False  # reconnecting after a clean, routine close

    def status_line(self, state: str, reason: str | None, now: float) -> str:
        """One readable line for systemd's STATUS=."""
        why = f" ({reason})" if reason else ""
        if state == "connected":
            since = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            return f"push connected since {since}"
        if state == "degraded":
            return f"degraded: polling every {self.degraded_interval:g} s{why}"
        if state == "backoff":
            return f"push lost{why}; reconnecting, polling every {self.poll_interval:g} s"
        return "connecting push"

    def transition(
        self, event: str, old: str, new: str, reason: str | None, *, again: bool
    ) -> None:
        """Log one transition; ``again``: a retry from DEGRADED failing as the last did."""
        fields = {"event": event, "from": old, "to": new}
        if reason:
            fields["reason"] = reason
        if new == "connected":
            if self._outage:
                log.info("reconnected", extra={"fields": fields})
            elif self._renewing:
                # Cyrus closes every stream after a while: routine, not news.
                log.debug("stream reopened", extra={"fields": fields})
            else:
                log.info("push connected", extra={"fields": fields})
            self._outage = self._renewing = False
        elif new == "degraded":
            self._outage = True
            level = logging.DEBUG if again else logging.WARNING
            log.log(level, "push unavailable; polling carries triage", extra={"fields": fields})
        elif new == "backoff":
            self._outage = True
            log.warning("push connection lost; will retry", extra={"fields": fields})
        else:
            self._renewing = event == "ended"
            log.debug("push state", extra={"fields": fields})
