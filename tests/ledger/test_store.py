"""The ledger file: what is written is read back exactly, and every way the
file can fail is an error naming it, never lost data."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailroom.ledger import schema
from mailroom.ledger.model import DecisionKind, Effects, EmailMove, Intent, Outcome
from mailroom.ledger.reading import Filter
from mailroom.ledger.sqlite_file import LedgerError
from mailroom.ledger.store import Ledger


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def intent(subject: str = "bob@acme.example", category: str = "Feed", **kw: object) -> Intent:
    fields: dict[str, object] = {
        "subject": subject,
        "kind": DecisionKind.TRIAGE,
        "category": category,
        "trigger": "push",
        "label_email": f"M-{subject}",
        **kw,
    }
    return Intent(**fields)  # type: ignore[arg-type]


MOVE = EmailMove("M1", frozenset({"screener"}), frozenset({"feed"}))
EFFECTS = Effects(
    previous="Imbox",
    contact_id="c1",
    contact_uid="0b1e…",
    contact_created=True,
    filled=("name",),
    joined=("Feed",),
    left=("Imbox",),
    moves=(MOVE, EmailMove("M2", frozenset({"screener", "x"}), frozenset({"feed", "x"}))),
)


def done(ledger: Ledger, planned: dict[int, Effects]) -> None:
    """A pass's plan written, then carried out."""
    ledger.plan(planned)
    ledger.finish(planned)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    opened, how = Ledger.open(tmp_path / "state" / "mailroom.db", clock=Clock())
    assert how.migrated_from == 0 and how.moved_aside is None
    return opened


def test_an_intent_then_its_effects_read_back_exactly(ledger: Ledger) -> None:
    first = ledger.begin([intent()])[0]
    assert [d.id for d in ledger.pending()] == [first]
    done(ledger, {first: EFFECTS})
    assert ledger.pending() == []
    (got,) = ledger.history()
    assert got.outcome is Outcome.DONE and got.finished is not None
    assert got.intent == intent()
    assert got.effects == EFFECTS


def test_one_label_is_never_recorded_twice(ledger: Ledger) -> None:
    """A pass killed after its intent: the next pass completes the same record."""
    first = ledger.begin([intent()])[0]
    again = ledger.begin([intent(trigger="startup")])[0]
    assert again == first
    done(ledger, {first: EFFECTS})
    # The same email labelled again later is a new decision.
    later = ledger.begin([intent()])[0]
    assert later != first
    assert len(ledger.history()) == 2


def test_a_failed_decision_keeps_its_reason_and_the_retry_is_new(ledger: Ledger) -> None:
    first = ledger.begin([intent()])[0]
    ledger.fail({first: "group Feed missing"})
    retry = ledger.begin([intent()])[0]
    assert retry != first
    failed = ledger.decision(first)
    assert failed is not None
    assert failed.outcome is Outcome.FAILED and failed.reason == "group Feed missing"


def test_a_part_way_decision_retried_in_vain_stays_part_way(ledger: Ledger) -> None:
    """What its first attempt wrote stands: a retry that writes nothing must not
    turn it into "failed", which undo and reset would pass over."""
    (first,) = ledger.begin([intent()])
    ledger.plan({first: EFFECTS})
    ledger.stop({first: "refused after its writes began"})
    (again,) = ledger.begin([intent()])
    assert again == first
    ledger.fail({again: "refused again"})
    (decision,) = ledger.history(Filter())
    assert decision.outcome is Outcome.PARTIAL
    assert decision.reason == "refused again (tried again; what landed before stands)"
    assert decision.effects.moves == EFFECTS.moves
    (retry,) = ledger.begin([intent()])
    assert retry == first  # still the one to finish


def test_history_filters_newest_first(tmp_path: Path) -> None:
    clock = Clock()
    ledger, _ = Ledger.open(tmp_path / "l.db", clock=clock)
    for subject, category in [
        ("a@acme.example", "Feed"),
        ("b@mail.acme.example", "Imbox"),
        ("c@notacme.example", "Feed"),
        ("@acme.example", "Feed"),
        ("d@acme_example.com", "Feed"),  # "_" is not a LIKE wildcard here
    ]:
        clock.now += 10
        done(ledger, {ledger.begin([intent(subject, category)])[0]: Effects()})
    subjects = [d.intent.subject for d in ledger.history(Filter(subject="@ACME.example"))]
    assert subjects == ["@acme.example", "b@mail.acme.example", "a@acme.example"]
    feed = [d.intent.subject for d in ledger.history(Filter(category="Feed"))]
    assert feed == ["d@acme_example.com", "@acme.example", "c@notacme.example", "a@acme.example"]
    recent = ledger.history(Filter(since=clock.now - 15))
    assert [d.intent.subject for d in recent] == ["d@acme_example.com", "@acme.example"]
    assert [d.intent.subject for d in ledger.history(Filter(subject="A@acme.example"))] == [
        "a@acme.example"
    ]
    assert len(ledger.history(Filter(limit=2))) == 2


def test_pruning_drops_email_detail_only(tmp_path: Path) -> None:
    clock = Clock()
    ledger, _ = Ledger.open(tmp_path / "l.db", clock=clock)
    old = ledger.begin([intent("old@x.example")])[0]
    done(ledger, {old: EFFECTS})
    clock.now += 400 * 86400
    new = ledger.begin([intent("new@x.example")])[0]
    done(ledger, {new: EFFECTS})
    assert ledger.prune(clock.now - 399 * 86400) == 2
    pruned, kept = ledger.decision(old), ledger.decision(new)
    assert pruned is not None and kept is not None
    assert pruned.moves_pruned and pruned.effects.moves == ()
    assert pruned.effects.joined == ("Feed",)  # the decision itself stays
    assert not kept.moves_pruned and kept.effects.moves == EFFECTS.moves


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "mailroom.db"
    garbage = b"this is not SQLite" * 300
    path.write_bytes(garbage)
    ledger, how = Ledger.open(path, clock=Clock())
    assert how.moved_aside is not None
    assert how.moved_aside.read_bytes() == garbage  # never overwritten
    assert how.moved_aside.name.startswith("mailroom.db.corrupt-")
    done(ledger, {ledger.begin([intent()])[0]: Effects()})
    assert len(ledger.history()) == 1


def test_a_damaged_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "mailroom.db"
    ledger, _ = Ledger.open(path, clock=Clock())
    for n in range(200):
        done(ledger, {ledger.begin([intent(f"s{n}@x.example")])[0]: EFFECTS})
    ledger.close()
    data = bytearray(path.read_bytes())
    data[4096 * 2 : 4096 * 3] = b"\xff" * 4096  # a page in the middle
    path.write_bytes(bytes(data))
    _, how = Ledger.open(path, clock=Clock())
    assert how.moved_aside is not None and how.moved_aside.read_bytes() == bytes(data)


def test_a_full_disk_fails_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "mailroom.db"
    ledger, _ = Ledger.open(path, clock=Clock())
    ledger._conn.execute("PRAGMA max_page_count = 8")  # what a full disk looks like to SQLite
    big = Effects(
        moves=tuple(EmailMove(f"M{n:05}", frozenset({"a"}), frozenset()) for n in range(5000))
    )
    first = ledger.begin([intent()])[0]
    with pytest.raises(LedgerError, match=rf"ledger {path}: .*full.*free space"):
        done(ledger, {first: big})
    (still,) = ledger.pending()  # the failed write left the intent as it was
    assert still.id == first and still.effects.moves == ()


def test_a_locked_file_fails_naming_the_other_process(tmp_path: Path) -> None:
    path = tmp_path / "mailroom.db"
    ledger, _ = Ledger.open(path, clock=Clock(), busy_timeout=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(LedgerError, match=r"locked.*another process"):
            ledger.begin([intent()])
    finally:
        other.execute("ROLLBACK")
    ledger.begin([intent()])


def test_a_directory_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(LedgerError, match=rf"ledger {blocker}/state/mailroom.db"):
        Ledger.open(blocker / "state" / "mailroom.db")


def test_a_read_only_file_fails_naming_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "mailroom.db"
    Ledger.open(path)[0].close()
    ledger, _ = Ledger.open(path)
    ledger._conn.execute("PRAGMA query_only = ON")  # as a read-only file is, even to root
    with pytest.raises(LedgerError, match=r"readonly.*writable"):
        ledger.begin([intent()])


def test_a_newer_schema_is_never_downgraded(tmp_path: Path) -> None:
    path = tmp_path / "mailroom.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    conn.close()
    with pytest.raises(LedgerError, match="newer than this Mailroom"):
        Ledger.open(path)
    assert path.exists()


# The first schema as it shipped, frozen here: every later Mailroom must open it.
FIRST_SCHEMA = schema.MIGRATIONS[0]


def test_a_file_of_the_first_schema_is_migrated_with_its_decisions(tmp_path: Path) -> None:
    path = tmp_path / "mailroom.db"
    conn = sqlite3.connect(path)
    conn.executescript(FIRST_SCHEMA)
    conn.execute(
        "INSERT INTO decisions (id, started, finished, subject, kind, category, trigger, "
        "outcome, joined) VALUES (7, 1.0, 2.0, 'old@x.example', 'triage', 'Feed', 'push', "
        "'done', '[\"Feed\"]')"
    )
    conn.execute("INSERT INTO moves VALUES (7, 'M9', '[\"s\"]', '[\"f\"]')")
    conn.execute("INSERT INTO moves VALUES (7, 'M1', '[\"s\",\"l\"]', '[\"f\"]')")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    ledger, how = Ledger.open(path)
    assert how.migrated_from == 1
    (old,) = ledger.history()
    assert old.id == 7 and old.effects.joined == ("Feed",)
    assert old.effects.moves == (
        EmailMove("M1", frozenset({"s", "l"}), frozenset({"f"})),
        EmailMove("M9", frozenset({"s"}), frozenset({"f"})),
    )
    assert old.effects.contact_name is None and old.intent.rule is None
    assert schema.version(ledger._conn) == schema.VERSION


def test_a_file_of_the_third_schema_has_its_moves_grouped(tmp_path: Path) -> None:
    path = tmp_path / "mailroom.db"
    conn = sqlite3.connect(path)
    for script in schema.MIGRATIONS[:3]:
        conn.executescript(script)
    conn.execute(
        "INSERT INTO decisions (id, started, finished, subject, kind, category, trigger, "
        "outcome, planned) VALUES (3, 1.0, 2.0, 'a@x.example', 'triage', 'Feed', 'push', "
        "'done', 1)"
    )
    # Schema 3 wrote one [email, before, after] per email, by email.
    conn.execute(
        'INSERT INTO decision_moves VALUES (3, \'[["M1",["l","s"],["f"]],'
        '["M2",["s"],["f"]],["M3",["s"],["f"]]]\')'
    )
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    ledger, how = Ledger.open(path)
    assert how.migrated_from == 3
    (stored,) = ledger._conn.execute("SELECT moves FROM decision_moves").fetchone()
    assert json.loads(stored) == [[["l", "s"], ["f"], ["M1"]], [["s"], ["f"], ["M2", "M3"]]]
    (old,) = ledger.history()
    assert old.effects.moves == (
        EmailMove("M1", frozenset({"s", "l"}), frozenset({"f"})),
        EmailMove("M2", frozenset({"s"}), frozenset({"f"})),
        EmailMove("M3", frozenset({"s"}), frozenset({"f"})),
    )


text = st.text(min_size=1, max_size=40)
ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)


@settings(max_examples=60, deadline=None)
@given(
    subject=text,
    category=st.none() | text,
    previous=st.none() | text,
    joined=st.lists(text, max_size=4, unique=True),
    moves=st.dictionaries(
        ids, st.tuples(st.frozensets(ids, max_size=3), st.frozensets(ids, max_size=3)), max_size=5
    ),
)
def test_any_decision_round_trips(
    tmp_path_factory: pytest.TempPathFactory,
    subject: str,
    category: str | None,
    previous: str | None,
    joined: list[str],
    moves: dict[str, tuple[frozenset[str], frozenset[str]]],
) -> None:
    ledger, _ = Ledger.open(tmp_path_factory.mktemp("l") / "l.db", clock=Clock())
    wanted = Intent(subject, DecisionKind.TRIAGE, category, "cli")
    effects = Effects(
        previous=previous,
        joined=tuple(joined),
        moves=tuple(EmailMove(e, b, a) for e, (b, a) in sorted(moves.items())),
    )
    done(ledger, {ledger.begin([wanted])[0]: effects})
    (got,) = ledger.history(Filter(limit=5))
    assert got.intent == wanted
    assert got.effects.joined == effects.joined
    assert got.effects.previous == previous
    assert sorted(got.effects.moves, key=lambda m: m.email) == sorted(
        effects.moves, key=lambda m: m.email
    )
    ledger.close()


def test_a_pass_writes_all_its_intents_at_once(ledger: Ledger) -> None:
    killed = ledger.begin([intent("a@x.example")])[0]  # a pass killed after this
    ids = ledger.begin([intent("a@x.example"), intent("b@x.example"), intent("c@x.example")])
    assert ids[0] == killed and len(set(ids)) == 3
    done(ledger, {ids[0]: EFFECTS, ids[2]: Effects(joined=("Imbox",))})
    ledger.fail({ids[1]: "contact refused"})
    got = {d.intent.subject: d for d in ledger.history()}
    assert got["a@x.example"].effects == EFFECTS
    assert got["b@x.example"].outcome is Outcome.FAILED
    assert got["c@x.example"].effects.joined == ("Imbox",)
    assert ledger.pending() == []


def test_a_plan_stays_pending_until_finished(ledger: Ledger) -> None:
    """A pass killed while carrying out its plan leaves what it meant to do."""
    (first,) = ledger.begin([intent()])
    ledger.plan({first: EFFECTS})
    (pending,) = ledger.pending()
    assert pending.id == first and pending.effects == EFFECTS
    assert pending.outcome is Outcome.PENDING and pending.finished is None
    # The sender labelled through another of its emails since: the same decision.
    (again,) = ledger.begin([intent(label_email="M-other")])
    assert again == first
    # The pass after a crash plans again over an account part-way done: the
    # record keeps where each email was first and what was joined and made.
    again_plan = Effects(
        contact_uid="made-by-the-crashed-pass",
        moves=(
            EmailMove("M1", frozenset({"feed", "label"}), frozenset({"feed"})),
            EmailMove("M3", frozenset({"screener"}), frozenset({"feed"})),
        ),
    )
    ledger.plan({first: again_plan})
    ledger.finish([first], note="completed after a restart")
    (got,) = ledger.history()
    assert got.reason == "completed after a restart"
    assert got.effects.moves == (
        EmailMove("M1", frozenset({"screener"}), frozenset({"feed"})),
        EFFECTS.moves[1],
        EmailMove("M3", frozenset({"screener"}), frozenset({"feed"})),
    )
    assert got.effects.joined == ("Feed",) and got.effects.left == ("Imbox",)
    assert got.effects.contact_created and got.effects.contact_uid == EFFECTS.contact_uid


def test_a_ledger_knows_its_account(tmp_path: Path) -> None:
    from mailroom.ledger.binding import LedgerAccountError
    from mailroom.ledger.model import AccountKey

    ledger, _ = Ledger.open(tmp_path / "l.db")
    assert ledger.account() is None
    mine = AccountKey("https://api.example.com", "me@example.com", "u1")
    ledger.bind(mine)
    ledger.bind(mine)  # again: nothing to do
    # The same server behind a proxy at another port: the same account.
    proxied = AccountKey("http://api.example.com:8443", "me@example.com", "u1")
    ledger.check(proxied)
    ledger.bind(proxied)
    assert ledger.account() == proxied
    for other in (
        AccountKey("https://api.example.com", "you@example.com", "u2"),
        AccountKey("https://api.example.com", "me@example.com", "u9"),
        AccountKey("https://jmap.other.example", "me@example.com", "u1"),
    ):
        with pytest.raises(LedgerAccountError, match="MAILROOM_STATE_DIR"):
            ledger.check(other)
        with pytest.raises(LedgerAccountError, match=r"records the decisions of me@example\.com"):
            ledger.bind(other)
    assert ledger.account() == proxied  # refused: nothing written
