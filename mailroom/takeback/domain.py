"""A whole-domain rule taken back with every sender it triaged.

The rule's undo is begun first, so the rule stops applying while its senders
go back; it is finished only once every sender is back (one that fails leaves
the rule suspended until the undo runs again).
"""

from __future__ import annotations

from mailroom.core.vocabulary import Trigger
from mailroom.ledger.model import Decision, Effects, undoing
from mailroom.ledger.store import Ledger
from mailroom.takeback.apply import TakeBack, Undone
from mailroom.takeback.plan import UndoPlan


async def undo_rule(
    ledger: Ledger,
    takeback: TakeBack,
    rule: Decision,
    plans: list[UndoPlan],
    trigger: Trigger = Trigger.CLI,
) -> list[Undone]:
    """Every sender ``rule`` triaged (``plans``, from ``takeback.plan`` of
    ``ledger.ruled_by``), back; the rule's undo recorded once all are."""
    (undo_id,) = ledger.begin([undoing(rule, trigger.value)])
    results = await takeback.apply(plans, ledger, trigger, rule=rule.id)
    if all(r.error is None for r in results):
        ledger.plan({undo_id: Effects(previous=rule.intent.category)})
        ledger.finish([undo_id])
    return results
