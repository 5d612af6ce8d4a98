"""The stand-in's Mailbox methods: get (with the insert right each mailbox
grants) and set (create only, refusing a duplicate name under one parent).

A mixin of :class:`~mailroom.sandbox.mailstore.MailStore`, which holds the
account's emails and mailboxes, takes the lock and dispatches the methods."""

from __future__ import annotations

from typing import Any, Literal

from mailroom.sandbox.mailmodel import ACCOUNT_ID, RIGHTS, Args, Email, Mailbox, MethodError


class MailboxMethods:
    """Mailbox/get and Mailbox/set over the account."""

    emails: dict[str, Email]
    mailboxes: dict[str, Mailbox]
    mailbox_state: int
    max_set: int
    no_insert: dict[str, Literal["forbidden", "cyrus-3.6"]]

    def _bump(self, email_ids: Any = (), mailboxes: bool = False) -> None:
        raise NotImplementedError

    def _add_mailbox(self, name: str, parent_id: str | None, role: str | None) -> Mailbox:
        raise NotImplementedError

    def _mailbox_json(self, box: Mailbox) -> dict[str, Any]:
        total = sum(1 for e in self.emails.values() if box.id in e.mailbox_ids)
        return {
            "id": box.id,
            "name": box.name,
            "parentId": box.parent_id,
            "role": box.role,
            "sortOrder": 0,
            "totalEmails": total,
            "unreadEmails": 0,
            "isSubscribed": True,
            "myRights": {**RIGHTS, "mayAddItems": box.id not in self.no_insert},
        }

    def _mailbox_get(self, args: Args) -> Args:
        ids = args.get("ids")
        if ids is None:
            ids = list(self.mailboxes)
        found = [self._mailbox_json(self.mailboxes[i]) for i in ids if i in self.mailboxes]
        return {
            "accountId": ACCOUNT_ID,
            "state": str(self.mailbox_state),
            "list": found,
            "notFound": [i for i in ids if i not in self.mailboxes],
        }

    def _mailbox_set(self, args: Args) -> Args:
        objects = sum(len(args.get(k) or ()) for k in ("create", "update", "destroy"))
        if objects > self.max_set:
            raise MethodError("requestTooLarge", f"maxObjectsInSet is {self.max_set}")
        old = str(self.mailbox_state)
        created: dict[str, Any] = {}
        not_created: dict[str, Any] = {}
        for key, props in (args.get("create") or {}).items():
            name = props.get("name") if isinstance(props, dict) else None
            parent = props.get("parentId") if isinstance(props, dict) else None
            if not isinstance(name, str) or not name:
                not_created[key] = {"type": "invalidProperties", "properties": ["name"]}
            elif parent is not None and parent not in self.mailboxes:
                not_created[key] = {"type": "invalidProperties", "properties": ["parentId"]}
            elif any(b.name == name and b.parent_id == parent for b in self.mailboxes.values()):
                not_created[key] = {
                    "type": "invalidProperties",
                    "properties": ["name"],
                    "description": "a mailbox with this name exists",
                }
            else:
                box = self._add_mailbox(name, parent, None)
                created[key] = {"id": box.id}
        if created:
            self._bump(mailboxes=True)
        return {
            "accountId": ACCOUNT_ID,
            "oldState": old,
            "newState": str(self.mailbox_state),
            "created": created or None,
            "notCreated": not_created or None,
        }
