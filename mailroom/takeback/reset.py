"""``reset``'s rounds: every decision taken back, newest first, a batch of
senders at a time (a constant number of requests per batch), each sender
walked back to before its first decision. Interrupted, it is simply run again.
"""

from __future__ import annotations

from collections.abc import Callable

from mailroom.core.vocabulary import Trigger
from mailroom.errors import MailroomError
from mailroom.ledger.model import undoing
from mailroom.ledger.reading import MAX_VARIABLES, TRAIL
from mailroom.ledger.store import Ledger
from mailroom.lists.undo import undo_rule_of_list
from mailroom.takeback.apply import TakeBack

BATCH = 100  # senders taken back per round of requests


async def reset_all(
    ledger: Ledger,
    takeback: TakeBack,
    progress: Callable[[int, int], None] = lambda undone, left: None,
) -> tuple[int, dict[str, str]]:
    """Take back everything that stands; the decisions taken back, and each
    sender that failed with why. ``progress`` hears (taken back, left) per round."""
    undone = 0
    failed: dict[str, str] = {}
    # Every domain rule suspended first (its undo begun: a rule being taken
    # back triages nobody), so a reset cut short never leaves a rule to triage
    # again the senders it already put back; each rule's undo is finished with
    # its own round below.
    # Mailing lists first: their mail back, their rules off (no contacts).
    for ident, rule in ledger.list_rules().items():
        try:
            await undo_rule_of_list(
                takeback.jmap, takeback.boxes, ledger, rule, Trigger.RESET.value
            )
            undone += 1
        except MailroomError as exc:
            failed[f"list:{ident}"] = str(exc)
    rules = ledger.domain_rules()
    if rules:
        ledger.begin([undoing(d, Trigger.RESET.value) for d in rules.values()])
    while True:
        batch = ledger.standing(limit=BATCH, skip=failed)
        if not batch:
            break
        plans = await takeback.plan(batch, ledger)
        for result in await takeback.apply(plans, ledger, Trigger.RESET):
            if result.error is None:
                undone += 1
            else:
                failed[result.plan.sender] = result.error
        progress(undone, len(ledger.standing(limit=TRAIL, skip=failed)))
        if len(failed) >= MAX_VARIABLES:
            break  # something is badly wrong: stop and say so
    return undone, failed
