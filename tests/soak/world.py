"""The soak's world: a simulated user, the ledger of labels, and the ground truth.

The user delivers mail, labels senders, re-labels them, makes conflicts and
resolves them, as a person would on their phone. Every label applied goes in
the ledger; it is settled when Mailroom removed it (or, for a conflict, added
the error label). The invariants that must hold at the instant a label comes
off are checked inside the stand-in, in the very request that removes it; the
label counts as triaged only once the server has applied that removal.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mailroom.account.categories import Categories, Category
from mailroom.carddav import vcard
from mailroom.ledger.model import Decision, DecisionKind, Outcome
from mailroom.sandbox import vcard_versions
from tests.faults import FaultySandbox

ERROR_LABEL = "@MailroomError"
BACK_LABEL = "@ToScreener"  # the sender back in the Screener, every decision taken back

# Odd but valid cards a user's address book may hold for a sender.
ODD_CARDS = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:\r\nEMAIL:{email}\r\nEND:VCARD\r\n",
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:Ödd Ñame ☃\r\nN:Name;Ödd;;;\r\n"
    "EMAIL;TYPE=INTERNET;TYPE=pref:{EMAIL}\r\nBDAY:not-a-date\r\nX-CUSTOM;X-P=1:v\r\n"
    "NOTE:line one\\nline two\r\nEND:VCARD\r\n",
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:Many Mails\r\nEMAIL:other@else.example\r\n"
    "EMAIL:{email}\r\nORG:Acme;;\r\nCATEGORIES:a,b\r\nEND:VCARD\r\n",
    "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:{uid}\r\nFN:Four\r\nKIND:individual\r\n"
    "EMAIL:{email}\r\nEND:VCARD\r\n",
)


LIST_LABEL = "@WholeList"


def _bare(uid: str | None) -> str:
    return (uid or "").lower().removeprefix("urn:uuid:")


@dataclass
class Label:
    email_id: str
    sender: str
    labels: frozenset[str]
    applied_at: float
    settled_at: float | None = None
    how: str = ""  # "triaged", "flagged", "deleted"
    visible_at: float = float("inf")  # when the server had it


@dataclass
class World:
    sandbox: FaultySandbox
    categories: Categories
    rng: random.Random
    clock: Any = time.monotonic
    ledger: list[Label] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    protected: dict[str, frozenset[str]] = field(default_factory=dict)  # Trash/Junk mail
    lock: threading.Lock = field(default_factory=threading.Lock)
    senders: list[str] = field(default_factory=list)
    odd_cards: int = 0
    deleted_mid_pass: int = 0
    relabels: int = 0
    conflicts: int = 0
    sent_back: int = 0
    trust_category: str = "Imbox"  # MAILROOM_TRUST_SENT of the soaked service

    def __post_init__(self) -> None:
        self.senders = [f"sender{i}@soak{i % 7}.example" for i in range(60)]
        # People the user writes to first: their replies skip the Screener
        # (MAILROOM_TRUST_SENT); the user never labels them.
        self.pen_pals = [f"pal{i}@pals{i % 5}.example" for i in range(20)]
        self.written: set[str] = set()  # pen pals the user has written to
        self.replied: set[str] = set()  # pen pals whose mail came after that
        # A mailing list the user decides once with @WholeList (never labelled
        # otherwise): posts from several people, all filed by the list's rule.
        self.list_header = "Soak announcements <announce.soaklists.example>"
        self.list_posters = [f"poster{i}@soaklists.example" for i in range(6)]
        self.list_posts: list[str] = []
        self.list_decided: str | None = None  # the category, once labelled
        self.cli_refused: Counter[tuple[str, str]] = Counter()  # (sender, category)
        self._first_act: float | None = None
        self._cards: dict[str, tuple[str, Any]] = {}  # name -> (etag, parsed)
        self._labels = {c.label: c for c in self.categories}
        self._delivered: dict[str, float] = {}  # email id -> when the user's mail arrived
        self._removing: dict[str, str] = {}  # email id -> how it settles once applied
        self._destroyed: set[str] = set()  # deleted by the world itself (mid-pass)
        # The driver says when faults run: a pass may only leave a label it saw
        # when something went wrong.
        self.fault_active = False
        self.calm_since = 0.0  # when the last fault ended
        self.calm_needed = 10.0  # seconds of calm before a pass must not leave a label
        self._last_scan: float | None = None
        self.sandbox.mail.before_method = self._on_method
        self.sandbox.mail.after_method = self._after_method

    # -- the user -----------------------------------------------------------------

    def backlog(self, senders: int = 12) -> None:
        """The Screener a user starts with: several emails from each of some senders,
        so that from the first label on a pass must re-file more than the labelled one."""
        for sender in self.rng.sample(self.senders, senders):
            for _ in range(self.rng.randint(2, 4)):
                eid = self.sandbox.mail.deliver(sender, name=sender.split("@")[0].title())
                self._delivered[eid] = self.clock()
        # Two people the user wrote to, who have replied already.
        for _ in range(2):
            self._pen_pal(reply=False)
            self._pen_pal(reply=True)
        # Three posts to the list, one of them labelled to decide it: later
        # posts during the run are the rule's to file.
        for _ in range(3):
            self._list_post(decide=False)
        self._list_post(decide=True)

    def act(self) -> None:
        """One thing a user does."""
        if self._first_act is None:
            self._first_act = self.clock()
        elif len(self.list_posts) < 5 and self.clock() - self._first_act > 10:
            self._list_post(decide=False)  # a post after the decision, for its rule
            return
        roll = self.rng.random()
        mail = self.sandbox.mail
        if roll < 0.35:
            sender = self.rng.choice(self.senders)
            eid = mail.deliver(sender, name=sender.split("@")[0].title())
            self._delivered[eid] = self.clock()
        elif roll < 0.76:
            self._label(conflict=False)
        elif roll < 0.80:
            self._send_back()
        elif roll < 0.88:
            self._label(conflict=True)
        elif roll < 0.91:
            self._resolve_flagged()
        elif roll < 0.95:
            self._pen_pal()
        elif roll < 0.98:
            self._list_post()
        else:
            self._protected_mail()

    def _list_post(self, decide: bool | None = None) -> None:
        """A post to the list; now and then (``decide``) the user decides the list
        by one of them."""
        mail = self.sandbox.mail
        waiting = [e for e in self.list_posts if "Screener" in self._names_of(e)]
        if decide is None:
            decide = self.rng.random() < 0.3
        if self.list_decided is None and waiting and decide:
            label = self.rng.choice(sorted(self._labels))
            mail.set_mailboxes(self.rng.choice(waiting), {"Screener", label, LIST_LABEL})
            self.list_decided = self._labels[label].name
            return
        poster = self.rng.choice(self.list_posters)
        headers = [("List-Id", self.list_header)]
        self.list_posts.append(mail.deliver(poster, name="Poster", headers=headers))

    def _list_unlabelled(self, email_id: str, before: set[str], after: set[str]) -> None:
        """The list's labels come off last: the list's mail is filed by then."""
        if self.list_decided is None:
            self.violations.append(f"{email_id}: list labels removed, nothing decided")
            return
        category = self.categories.by_name(self.list_decided)
        if "Screener" in after or not self._filed(after, category):
            self.violations.append(f"list: {email_id}'s labels removed before filing")

    def _names_of(self, email_id: str) -> set[str]:
        mail = self.sandbox.mail
        with mail.lock:
            email = mail.emails.get(email_id)
            return {mail.mailboxes[m].name for m in email.mailbox_ids} if email else set()

    def check_list(self, decisions: list[Decision]) -> None:
        """Decided once: every post of the list filed (those before and after),
        one decision by label and filings by its rule, no poster in a group."""
        listed = [d for d in decisions if d.intent.subject == "list:announce.soaklists.example"]
        if self.list_decided is None:
            if any(d.outcome is Outcome.DONE for d in listed):
                self.violations.append("list: decided, yet the user never labelled it")
            return
        by_label = [d for d in listed if d.intent.rule is None and d.outcome is Outcome.DONE]
        if len(by_label) != 1 or by_label[0].intent.category != self.list_decided:
            self.violations.append(f"list: {len(by_label)} decisions by its label")
        category = self.categories.by_name(self.list_decided)
        for eid in self.list_posts:
            names = self._names_of(eid)
            if names and ("Screener" in names or not self._filed(names, category)):
                self.violations.append(f"list: post {eid} in {sorted(names)}")
                break
        for poster in self.list_posters:
            if self.groups_of(poster):
                self.violations.append(f"list: {poster} put in a group")

    def _pen_pal(self, reply: bool | None = None) -> None:
        """The user writes to someone first, or someone written to replies
        (``reply``: which; None: the user's whim)."""
        mail = self.sandbox.mail
        fresh = [p for p in self.pen_pals if p not in self.written]
        if reply is None:
            reply = not fresh or (bool(self.written - self.replied) and self.rng.random() >= 0.4)
        if not reply and fresh:
            pal = self.rng.choice(fresh)
            field = self.rng.choice(["to", "cc", "bcc"])
            mail.deliver(
                self.sandbox.username,
                mailboxes=["Sent"],
                to=[pal] if field == "to" else ["someone@else.example"],
                cc=[pal] if field == "cc" else [],
                bcc=[pal] if field == "bcc" else [],
            )
            self.written.add(pal)
            return
        # Each replies once: later mail of theirs is the account's rules' to
        # file (the stand-in has none), not Mailroom's.
        waiting = sorted(self.written - self.replied)
        if not waiting:
            return
        pal = self.rng.choice(waiting)
        mail.deliver(pal, name=pal.split("@")[0].title())
        self.replied.add(pal)

    def _unlabelled_in_screener(self) -> list[tuple[str, str]]:
        mail = self.sandbox.mail
        with mail.lock:
            screener = mail.mailbox_id("Screener")
            names = {b.id: b.name for b in mail.mailboxes.values() if b.parent_id is None}
            out = []
            for e in mail.emails.values():
                boxes = {names.get(m, "") for m in e.mailbox_ids}
                sender = e.from_[0]["email"]
                theirs = "@pals" in sender or "@soaklists" in sender  # trusted, or a list
                if screener in e.mailbox_ids and boxes == {"Screener"} and not theirs:
                    out.append((e.id, sender))
            return out

    def _label(self, *, conflict: bool) -> None:
        candidates = self._unlabelled_in_screener()
        if not candidates:
            return
        email_id, sender = self.rng.choice(candidates)
        with self.lock:
            # A flagged email not resolved yet counts: a person resolves it first,
            # rather than label another email of the sender (two labels: a conflict).
            pending = {x.sender for x in self.ledger if x.settled_at is None or x.how == "flagged"}
        if sender in pending:
            return  # one label at a time per sender, as a person would
        labels = self.rng.sample(list(self._labels), 2 if conflict else 1)
        if any(x.sender == sender and x.how == "triaged" for x in self.ledger):
            self.relabels += 1
        if conflict:
            self.conflicts += 1
        if self.rng.random() < 0.15 and self.sandbox.contacts.contact_uid(sender) is None:
            template = self.rng.choice(ODD_CARDS)
            uid = f"odd-{self.odd_cards}"
            text = template.format(uid=uid, email=sender, EMAIL=sender.upper())
            self.sandbox.contacts.write(f"{uid}.vcf", text)
            self.odd_cards += 1
        entry = Label(email_id, sender, frozenset(labels), self.clock())
        with self.lock:
            self.ledger.append(entry)
        self.sandbox.mail.set_mailboxes(email_id, {"Screener", *labels})
        entry.visible_at = self.clock()

    def _send_back(self) -> None:
        """The user changes their mind about a triaged sender: ``@ToScreener`` on
        one of its filed emails."""
        mail = self.sandbox.mail
        with self.lock:
            pending = {x.sender for x in self.ledger if x.settled_at is None}
            triaged = sorted({x.sender for x in self.ledger if x.how == "triaged"} - pending)
        if not triaged:
            return
        sender = self.rng.choice(triaged)
        with mail.lock:
            names = {b.id: b.name for b in mail.mailboxes.values()}
            filed = [
                (e.id, {names.get(m, "") for m in e.mailbox_ids})
                for e in mail.emails.values()
                if e.from_[0]["email"] == sender and e.id not in self.protected
            ]
        filed = [(i, b) for i, b in filed if "Screener" not in b and not b & self._all_labels]
        if not filed:
            return
        email_id, boxes = self.rng.choice(sorted(filed, key=lambda f: f[0]))
        entry = Label(email_id, sender, frozenset({BACK_LABEL}), self.clock())
        with self.lock:
            self.ledger.append(entry)
        self.sent_back += 1
        mail.set_mailboxes(email_id, {*boxes, BACK_LABEL})
        entry.visible_at = self.clock()

    @property
    def _all_labels(self) -> set[str]:
        return {*self._labels, ERROR_LABEL, BACK_LABEL}

    def _resolve_flagged(self) -> None:
        """The user sees the error label and keeps one of the two labels."""
        mail = self.sandbox.mail
        with self.lock:
            flagged = [x for x in self.ledger if x.how == "flagged"]
        for entry in flagged:
            entry.how = "flagged-resolved"
            if entry.email_id not in mail.emails:
                continue
            keep = self.rng.choice(sorted(entry.labels))
            with self.lock:
                self.ledger.append(
                    Label(entry.email_id, entry.sender, frozenset({keep}), self.clock())
                )
            mail.set_mailboxes(entry.email_id, {"Screener", keep})
            return

    def _protected_mail(self) -> None:
        """Mail from a sender that also sits in Trash or Junk: never to be touched."""
        sender = self.rng.choice(self.senders)
        where = self.rng.choice(["Trash", "Spam"])
        eid = self.sandbox.mail.deliver(sender, mailboxes=[where])
        self.protected[eid] = frozenset({where})

    # -- the world's own events --------------------------------------------------------

    def delete_mid_pass(self, on: bool) -> None:
        self._delete_next = on

    _delete_next = False

    def rename_a_label_mailbox(self) -> bool:
        """The user renames an (empty) label mailbox: Mailroom must resolve again."""
        mail = self.sandbox.mail
        label = self.rng.choice(sorted(self._labels))
        with mail.lock:
            box = next(
                (b for b in mail.mailboxes.values() if b.name == label and b.parent_id is None),
                None,
            )
            if box is None or any(box.id in e.mailbox_ids for e in mail.emails.values()):
                return False
            box.name = f"{label} (old {box.id})"
            mail._bump(mailboxes=True)
        self._renamed = label
        return True

    _renamed: str | None = None

    def restore_label_mailbox(self) -> None:
        """The user makes the label again (`mailroom setup --apply`): the fault is over."""
        if self._renamed is not None:
            self.sandbox.mail.ensure_mailbox(self._renamed)
            self._renamed = None

    # -- checks ---------------------------------------------------------------------------

    def _on_method(self, name: str, args: dict[str, Any]) -> None:
        """Runs inside the stand-in, under its lock, before each JMAP method."""
        if name == "Email/query":
            self._on_query(args)
        if name != "Email/set":
            return
        mail = self.sandbox.mail
        update = args.get("update") or {}
        if self._delete_next and update and self.rng.random() < 0.3:
            victim = self.rng.choice(sorted(update))
            if victim in mail.emails and victim not in self.protected:
                self._destroyed.add(victim)
                del mail.emails[victim]
                mail._bump([(victim, "destroyed")])
                self.deleted_mid_pass += 1
                with self.lock:
                    for x in self.ledger:
                        if x.email_id == victim and x.settled_at is None:
                            x.settled_at, x.how = self.clock(), "deleted"
        for email_id in args.get("destroy") or []:
            if email_id in self.protected:
                self.violations.append(f"{email_id} in Trash/Junk was destroyed")
        by_id = {b.id: b.name for b in mail.mailboxes.values()}
        for email_id, patch in update.items():
            email = mail.emails.get(email_id)
            if email is None or not isinstance(patch, dict):
                continue
            before = {by_id.get(m, "") for m in email.mailbox_ids}
            after = set(before)
            for key, value in patch.items():
                if key.startswith("mailboxIds/"):
                    box = by_id.get(key.split("/", 1)[1], "")
                    if value:
                        after.add(box)
                    else:
                        after.discard(box)
                elif key == "mailboxIds" and isinstance(value, dict):
                    after = {by_id.get(m, "") for m, on in value.items() if on}
            if email_id in self.protected:
                self.violations.append(f"{email_id} in Trash/Junk was updated")
            if BACK_LABEL in before - after:
                self._back_label_removed(email_id, email.from_[0]["email"], after)
            removed = (before - after) & set(self._labels)
            if removed and LIST_LABEL in before:
                self._list_unlabelled(email_id, before, after)
            elif removed:
                self._label_removed(email_id, email.from_[0]["email"], removed, after)
            if ERROR_LABEL in after - before:
                entry = self._pending(email_id)
                if entry is not None and len(entry.labels) == 1:
                    self.violations.append(
                        f"{email_id}: the error label on a sender with one label "
                        f"({next(iter(entry.labels))})"
                    )
                self._removing[email_id] = "flagged"

    def _on_query(self, args: dict[str, Any]) -> None:
        """A pass's scan: every label the previous pass saw must be settled by now.

        Passes never overlap, so the previous one has finished; when nothing
        went wrong, it triaged each sender it saw, or flagged it, or logged
        why it failed; it never silently left one for later.
        """
        flt = args.get("filter")
        conditions = flt.get("conditions") if isinstance(flt, dict) else None
        # The scan's filter: any of the label mailboxes (not the Sent query's AND).
        scan = (
            isinstance(flt, dict)
            and flt.get("operator") == "OR"
            and isinstance(conditions, list)
            and any(isinstance(c, dict) and "inMailbox" in c for c in conditions)
        )
        if not scan or args.get("position", 0):
            return
        now, previous = self.clock(), self._last_scan
        self._last_scan = now
        if previous is None or self.fault_active:
            return
        calm_from = self.calm_since + self.calm_needed
        with self.lock:
            left = [
                x
                for x in self.ledger
                if x.settled_at is None and calm_from <= x.visible_at < previous
            ]
        for x in left:
            self.violations.append(
                f"{x.email_id}: a pass saw {x.sender}'s label {sorted(x.labels)} and left it"
            )
            x.visible_at = float("inf")  # said once

    def _after_method(self, name: str, args: dict[str, Any], result: dict[str, Any]) -> Any:
        """A label is settled only once the server applied its removal (or flag)."""
        if name == "Email/set":
            updated = result.get("updated") or {}
            for email_id in args.get("update") or {}:
                how = self._removing.pop(email_id, None)
                if how is not None and email_id in updated:
                    if how == "sent back":
                        self._all_back(email_id)
                    self._settle(email_id, how)
        return result

    def _back_label_removed(self, email_id: str, sender: str, after: set[str]) -> None:
        """``@ToScreener`` comes off last: the sender is in no group by then, and the
        email goes back to the Screener."""
        entry = self._pending(email_id)
        if entry is None or entry.labels != {BACK_LABEL}:
            self.violations.append(f"{email_id}: a back-to-Screener label not in the ledger")
            return
        groups = self.groups_of(sender)
        if groups:
            self.violations.append(
                f"{email_id}: {BACK_LABEL} removed while {sender} is still in {sorted(groups)}"
            )
        if "Screener" not in after:
            self.violations.append(f"{email_id}: {BACK_LABEL} removed, not back ({sorted(after)})")
        self._removing[email_id] = "sent back"

    def _all_back(self, labelled: str) -> None:
        """Once the label is off, every email of the sender Mailroom had filed is back
        in the Screener (those with the error label aside: the user's to resolve)."""
        mail = self.sandbox.mail
        email = mail.emails.get(labelled)
        if email is None:
            return
        sender = email.from_[0]["email"]
        names = {b.id: b.name for b in mail.mailboxes.values()}
        for e in mail.emails.values():
            if e.from_[0]["email"] != sender or e.id in self.protected:
                continue
            boxes = {names.get(m, "") for m in e.mailbox_ids}
            if ERROR_LABEL in boxes or boxes & set(self._labels):
                continue
            if "Screener" not in boxes:
                self.violations.append(
                    f"{labelled}: {sender} sent back while its {e.id} is in {sorted(boxes)}"
                )

    def _label_removed(
        self, email_id: str, sender: str, removed: set[str], after: set[str]
    ) -> None:
        entry = self._pending(email_id)
        if entry is None:
            self.violations.append(f"{email_id}: a label Mailroom removed was not in the ledger")
            return
        (label,) = entry.labels if len(entry.labels) == 1 else (None,)
        if label is None:
            self.violations.append(f"{email_id}: a conflicting label was removed")
            return
        category = self._labels[label]
        want = {c.contact_group for c in self.categories.chain(category)}
        groups = self.groups_of(sender)
        if groups != want:
            self.violations.append(
                f"{email_id}: label {label} removed while {sender} is in {sorted(groups)}, "
                f"not {sorted(want)}"
            )
        if "Screener" in after or not self._filed(after, category):
            self.violations.append(f"{email_id}: label removed before re-filing ({sorted(after)})")
        self._all_filed(sender, category, entry.applied_at, email_id)
        self._removing[email_id] = "triaged"

    def _filed(self, boxes: set[str], category: Category) -> bool:
        chain = {c.destination for c in self.categories.chain(category)}
        others = {c.destination for c in self.categories} - chain
        return category.destination in boxes and not boxes & others

    def _all_filed(self, sender: str, category: Category, since: float, labelled: str) -> None:
        """Every email of the sender the pass could see is where the category puts it."""
        mail = self.sandbox.mail
        by_id = {b.id: b.name for b in mail.mailboxes.values()}
        for email in mail.emails.values():
            if email.from_[0]["email"] != sender or email.id == labelled:
                continue
            if email.id in self.protected or self._delivered.get(email.id, 0.0) > since:
                continue  # Trash and Junk are never filed; later mail is the next pass's
            boxes = {by_id.get(m, "") for m in email.mailbox_ids}
            if "Screener" in boxes or not self._filed(boxes, category):
                self.violations.append(
                    f"{labelled}: label removed while {sender}'s {email.id} is in "
                    f"{sorted(boxes)}, not filed as {category.name}"
                )

    def _pending(self, email_id: str) -> Label | None:
        with self.lock:
            for x in reversed(self.ledger):
                if x.email_id == email_id and x.settled_at is None:
                    return x
        return None

    def _settle(self, email_id: str, how: str) -> None:
        entry = self._pending(email_id)
        if entry is not None:
            entry.settled_at, entry.how = self.clock(), how

    def groups_of(self, sender: str) -> set[str]:
        """Managed groups the sender's contact is in (parsing each card once)."""
        cards = self.sandbox.contacts
        with cards.lock:
            items = {n: (c.etag, c.text) for n, c in cards.cards.items()}
        parsed = {}
        for name, (etag, text) in items.items():
            cached = self._cards.get(name)
            if cached is None or cached[0] != etag:
                try:
                    # As a CardDAV reader sees it: JMAP writes are kept as vCard 4.0.
                    cached = (etag, vcard.parse(vcard_versions.to_v3_text(text), name))
                except vcard.VCardError:
                    cached = (etag, None)
                self._cards[name] = cached
            parsed[name] = cached[1]
        uids = {
            vcard.uid(p)
            for p in parsed.values()
            if p is not None and not vcard.is_group(p) and sender.lower() in vcard.emails(p)
        }
        managed = set(self.categories.contact_groups)
        return {
            vcard.display_name(p)
            for p in parsed.values()
            if p is not None
            and vcard.is_group(p)
            and vcard.display_name(p) in managed
            and uids & vcard.members(p)
        }

    def sweep(self) -> None:
        """Checks that hold at any moment."""
        mail = self.sandbox.mail
        with mail.lock:
            for e in mail.emails.values():
                if not e.mailbox_ids:
                    self.violations.append(f"{e.id} is in no mailbox")
            for eid, boxes in self.protected.items():
                email = mail.emails.get(eid)
                if email is None:
                    self.violations.append(f"{eid} in {sorted(boxes)} was deleted")
                    continue
                names = {mail.mailboxes[m].name for m in email.mailbox_ids}
                if frozenset(names) != boxes:
                    self.violations.append(f"{eid} left {sorted(boxes)}: now {sorted(names)}")
        if mail.would_empty:
            self.violations.append(f"{mail.would_empty} updates tried to leave mail nowhere")

    def check_decisions(self, decisions: list[Decision]) -> dict[str, int]:
        """The service's own ledger against the labels: each label triaged has its
        decision, done once, and nothing is left pending once all is quiet."""
        pending = [d for d in decisions if d.outcome is Outcome.PENDING]
        if pending:
            self.violations.append(f"ledger: {len(pending)} decisions still pending at the end")
        done: Counter[tuple[str, str]] = Counter(
            (d.intent.subject, d.intent.category or "")
            for d in decisions
            if d.intent.kind is DecisionKind.TRIAGE
            and d.outcome is Outcome.DONE
            and d.intent.trigger not in ("cli", "sent")  # a command's or trust's, not a label's
            and not d.intent.subject.startswith("list:")  # a list's, not a sender's
        )
        with self.lock:
            want: Counter[tuple[str, str]] = Counter(
                (x.sender, self._labels[label].name)
                for x in self.ledger
                if x.how == "triaged"
                for label in x.labels
            )
        # A command refused part-way leaves its decision open, and the next label
        # for the same sender and category finishes that record (one decision is
        # never recorded twice): such a label is accounted for by the command's.
        taken_up: Counter[tuple[str, str]] = Counter(
            (d.intent.subject, d.intent.category or "")
            for d in decisions
            if d.intent.kind is DecisionKind.TRIAGE
            and d.outcome is Outcome.DONE
            and d.intent.trigger == "cli"
        )
        taken_up = taken_up & self.cli_refused
        missing = want - done - taken_up
        if missing:
            example = next(iter(missing))
            theirs = [
                f"{d.intent.kind.value} {d.intent.category} by {d.intent.trigger}: "
                f"{d.outcome.value}"
                for d in reversed(decisions)
                if d.intent.subject == example[0]
            ]
            with self.lock:
                labels = [(sorted(x.labels), x.how) for x in self.ledger if x.sender == example[0]]
            self.violations.append(
                f"ledger: {sum(missing.values())} triaged labels without a done decision "
                f"(e.g. {example[0]} -> {example[1]}; its decisions, oldest first: {theirs}; "
                f"its labels: {labels}; commands refused: {dict(self.cli_refused)})"
            )
        with self.lock:
            back = Counter(x.sender for x in self.ledger if x.how == "sent back")
        undone = Counter(
            d.intent.subject
            for d in decisions
            if d.intent.kind is DecisionKind.UNDO and d.outcome is Outcome.DONE
        )
        short = [s for s in back if undone[s] < back[s]]
        if short:
            self.violations.append(
                f"ledger: {len(short)} senders sent back without an undo (e.g. {short[0]})"
            )
        extra = sum((done - want).values())
        if extra > self.deleted_mid_pass:  # a label deleted mid-pass may still be a decision
            self.violations.append(f"ledger: {extra} done decisions beyond the labels triaged")
        self.check_account(decisions)
        self.check_pen_pals(decisions)
        self.check_list(decisions)
        return {
            "ledger_decisions": len(decisions),
            "ledger_done": sum(done.values()),
            "pen_pals_replied": len(self.replied),
            "list_posts": len(self.list_posts),
            "list_decided": int(self.list_decided is not None),
        }

    def check_pen_pals(self, decisions: list[Decision]) -> None:
        """Everyone written to who replied was trusted: one decision with trigger
        ``sent``, their mail out of the Screener, their contact in the group."""
        trusted = Counter(
            d.intent.subject
            for d in decisions
            if d.intent.trigger == "sent" and d.outcome is Outcome.DONE
        )
        for pal in sorted(self.replied):
            if trusted[pal] != 1:
                self.violations.append(f"trust: {pal} replied, {trusted[pal]} sent decisions")
                continue
            mail = self.sandbox.mail
            with mail.lock:
                left = [
                    e.id
                    for e in mail.emails.values()
                    if e.from_[0]["email"] == pal and mail.mailbox_id("Screener") in e.mailbox_ids
                ]
            if left:
                self.violations.append(f"trust: {pal}'s {left[0]} still in the Screener")
            want = {
                c.contact_group
                for c in self.categories.chain(self.categories.by_name(self.trust_category))
            }
            if self.groups_of(pal) != want:
                self.violations.append(f"trust: {pal} in groups {sorted(self.groups_of(pal))}")
        strangers = set(trusted) - self.written
        if strangers:
            self.violations.append(f"trust: never written to, yet trusted: {sorted(strangers)[0]}")

    def check_account(self, decisions: list[Decision]) -> None:
        """The ledger-account invariant, once all is quiet: every sender whose
        decisions are settled is in exactly the groups its latest says, and every
        contact Mailroom made is one a decision of the ledger says it made."""
        by_sender: dict[str, list[Decision]] = {}
        for d in decisions:  # newest first
            by_sender.setdefault(d.intent.subject, []).append(d)
        made = {
            _bare(d.effects.contact_uid)
            for d in decisions
            if d.effects.contact_created and d.effects.contact_uid and d.outcome.stands
        }
        for sender in self.senders:
            trail = by_sender.get(sender, [])
            for uid in self._contact_uids(sender):
                if not uid.startswith("odd-") and _bare(uid) not in made:
                    self.violations.append(
                        f"ledger: {sender}'s contact {uid} was made by Mailroom but no "
                        "decision that stands says so"
                    )
            if any(d.outcome in (Outcome.PENDING, Outcome.PARTIAL) for d in trail):
                continue
            counting = [
                d
                for d in trail
                if d.outcome is Outcome.DONE
                and d.intent.kind in (DecisionKind.TRIAGE, DecisionKind.UNDO)
            ]
            if not counting:
                continue
            category = counting[0].intent.category
            want = (
                {c.contact_group for c in self.categories.chain(self.categories.by_name(category))}
                if category
                else set()
            )
            have = self.groups_of(sender)
            if have != want:
                self.violations.append(
                    f"ledger: {sender} is in groups {sorted(have)}, its decisions say "
                    f"{sorted(want)} (latest #{counting[0].id})"
                )

    def _contact_uids(self, sender: str) -> set[str]:
        self.groups_of(sender)  # parses and caches every card
        return {
            vcard.uid(p)
            for _, p in self._cards.values()
            if p is not None and not vcard.is_group(p) and sender.lower() in vcard.emails(p)
        }

    def pending(self) -> list[Label]:
        with self.lock:
            return [x for x in self.ledger if x.settled_at is None]
