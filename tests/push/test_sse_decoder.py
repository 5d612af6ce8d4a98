"""SSE decoder vectors: every parsing rule, fed whole and split at every byte."""

from __future__ import annotations

import pytest

from mailroom.push.sse import (
    Comment,
    Event,
    IdCleared,
    Invalid,
    Item,
    Oversized,
    Retry,
    SseDecoder,
)


def decode_whole(data: bytes, **kw: int) -> tuple[list[Item], SseDecoder]:
    d = SseDecoder(**kw)
    out = d.feed(data)
    out += d.close()
    return out, d


def decode_split(data: bytes, at: int, **kw: int) -> list[Item]:
    d = SseDecoder(**kw)
    out = d.feed(data[:at]) + d.feed(data[at:])
    return out + d.close()


def decode_bytewise(data: bytes) -> list[Item]:
    d = SseDecoder()
    out: list[Item] = []
    for i in range(len(data)):
        out += d.feed(data[i : i + 1])
    return out + d.close()


VECTORS: list[tuple[str, bytes, list[Item]]] = [
    ("simple", b"data: hello\n\n", [Event("message", "hello", "")]),
    ("event type", b"event: state\ndata: {}\n\n", [Event("state", "{}", "")]),
    (
        "type resets",
        b"event: a\ndata: 1\n\ndata: 2\n\n",
        [Event("a", "1", ""), Event("message", "2", "")],
    ),
    ("multi data joined by LF", b"data: a\ndata: b\n\n", [Event("message", "a\nb", "")]),
    ("only one space removed", b"data:  two\n\n", [Event("message", " two", "")]),
    ("no space", b"data:x\n\n", [Event("message", "x", "")]),
    ("CRLF", b"data: a\r\n\r\n", [Event("message", "a", "")]),
    ("CR", b"data: a\r\rdata: b\r\r", [Event("message", "a", ""), Event("message", "b", "")]),
    ("mixed ends", b"data: a\r\ndata: b\rdata: c\n\n", [Event("message", "a\nb\nc", "")]),
    ("comment", b": keepalive\n\n", [Comment(" keepalive")]),
    ("empty data dispatches nothing", b"event: x\n\n", []),
    ("data with empty value", b"data\n\n", [Event("message", "", "")]),
    ("field without colon", b"data\ndata\n\n", [Event("message", "\n", "")]),
    (
        "id kept",
        b"id: 7\ndata: a\n\ndata: b\n\n",
        [Event("message", "a", "7"), Event("message", "b", "7")],
    ),
    (
        "empty id clears",
        b"id: 7\ndata: a\n\nid\ndata: b\n\n",
        [Event("message", "a", "7"), IdCleared(), Event("message", "b", "")],
    ),
    (
        "id with NUL ignored",
        b"id: 7\ndata: a\n\nid: 8\x009\ndata: b\n\n",
        [Event("message", "a", "7"), Event("message", "b", "7")],
    ),
    ("retry digits", b"retry: 2500\n\n", [Retry(2500)]),
    (
        "retry rejects sign (ignored, reported for counting)",
        b"retry: +5\nretry: -1\nretry:  5\nretry: 5s\nretry:\n\n",
        [
            Invalid("retry", f"not a number of milliseconds: {v!r}")
            for v in ("+5", "-1", " 5", "5s", "")
        ],
    ),
    ("retry of 5,000 digits is bounded", b"retry: " + b"9" * 5000 + b"\n\n", [Retry(10**12)]),
    ("retry leading zeros", b"retry: 0000000000000000000000042\n\n", [Retry(42)]),
    ("unknown field ignored", b"foo: bar\ndata: a\n\n", [Event("message", "a", "")]),
    ("field names are case-sensitive", b"Data: a\nDATA: b\n\n", []),
    ("BOM stripped once", b"\xef\xbb\xbfdata: a\n\n", [Event("message", "a", "")]),
    ("second BOM kept", b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\n", []),
    (
        "utf-8 always",
        "data: caf\u00e9 \u2603\n\n".encode(),
        [Event("message", "caf\u00e9 \u2603", "")],
    ),
    ("invalid utf-8 replaced", b"data: \xff\n\n", [Event("message", "\ufffd", "")]),
    ("unfinished event discarded", b"data: a\n", []),
    ("unfinished line discarded", b"data: a", []),
    ("colon in value kept", b'data: {"a":1}\n\n', [Event("message", '{"a":1}', "")]),
]


@pytest.mark.parametrize(("name", "data", "expected"), VECTORS, ids=[v[0] for v in VECTORS])
def test_vector_whole(name: str, data: bytes, expected: list[Item]) -> None:
    assert decode_whole(data)[0] == expected


@pytest.mark.parametrize(("name", "data", "expected"), VECTORS, ids=[v[0] for v in VECTORS])
def test_vector_split_at_every_byte(name: str, data: bytes, expected: list[Item]) -> None:
    for at in range(len(data) + 1):
        assert decode_split(data, at) == expected, f"split at {at}"
    assert decode_bytewise(data) == expected


def test_cr_then_lf_in_next_chunk_is_one_line_end() -> None:
    d = SseDecoder()
    assert d.feed(b"data: a\r") == []
    assert d.feed(b"\n\r") == [Event("message", "a", "")]
    assert d.feed(b"\ndata: b\n\n") == [Event("message", "b", "")]  # the LF after CR is one end


def test_unfinished_event_id_not_committed() -> None:
    out, d = decode_whole(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
    assert out == [Event("message", "a", "1")]
    assert d.last_event_id == "1"


def test_id_committed_even_without_data() -> None:
    out, d = decode_whole(b"id: 5\n\n")
    assert out == []
    assert d.last_event_id == "5"


def test_a_run_of_comment_lines_is_one_item() -> None:
    out, _ = decode_whole(b": a\n:b\r\n:c\rdata: x\n\n")
    assert out == [Comment("c", 3), Event("message", "x", "")]
    # Split anywhere, the same comments are seen (in fewer or more items).
    data = b": a\n:b\r\n:c\rdata: x\n\n" * 3
    for at in range(len(data) + 1):
        d = SseDecoder()
        items = d.feed(data[:at]) + d.feed(data[at:])
        assert sum(i.repeat for i in items if isinstance(i, Comment)) == 9
        assert [i for i in items if not isinstance(i, Comment)] == [Event("message", "x", "")] * 3


def test_an_overlong_comment_line_is_still_oversized() -> None:
    out, _ = decode_whole(b":" + b"x" * 100 + b"\n:ok\n\n", max_line=50)
    assert out == [Oversized("line"), Comment("ok")]


def test_an_empty_id_clears_and_says_so() -> None:
    out, d = decode_whole(b"id: 5\ndata: a\n\nid\ndata: b\n\nid:\n\n")
    assert out == [Event("message", "a", "5"), IdCleared(), Event("message", "b", ""), IdCleared()]
    assert d.last_event_id == ""


def test_oversized_line_is_dropped_and_stream_continues() -> None:
    data = b"data: " + b"x" * 100 + b"\n\ndata: ok\n\n"
    for at in range(0, len(data) + 1, 7):
        assert decode_split(data, at, max_line=50) == [
            Oversized("line"),
            Event("message", "ok", ""),
        ]


def test_oversized_event_is_dropped_and_stream_continues() -> None:
    data = b"data: aaaa\ndata: bbbb\ndata: cccc\n\ndata: ok\n\n"
    out, _ = decode_whole(data, max_event=10)
    assert out == [Oversized("event"), Event("message", "ok", "")]


def test_memory_is_bounded_for_an_endless_line() -> None:
    d = SseDecoder(max_line=1000)
    out: list[Item] = []
    for _ in range(1000):
        out += d.feed(b"y" * 1000)
    assert out == [Oversized("line")]
    assert d._line_len == 0  # nothing retained
