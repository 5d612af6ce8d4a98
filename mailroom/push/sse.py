"""An incremental Server-Sent Events decoder (WHATWG HTML §9.2.6), sans IO.

Feed it bytes as they arrive, in chunks of any size; it returns what became
complete. It follows the parsing rules exactly (UTF-8 whatever the charset, one
leading BOM stripped, CR/LF/CRLF line ends even split across chunks, one space
after the colon removed, ``retry`` only when all digits, ``id`` without NUL,
nothing dispatched for empty data, an unfinished event discarded at the end)
and bounds its buffers so a broken or hostile server cannot exhaust memory.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

MAX_LINE = 1 << 20  # characters in one line
MAX_EVENT = 1 << 20  # characters of data in one event
# ``retry:`` digits kept: more than a day in milliseconds is absurd anyway, and
# int() refuses strings of over 4,300 digits (CPython's DoS guard).
MAX_RETRY_DIGITS = 12


@dataclass(frozen=True)
class Event:
    type: str
    data: str
    last_event_id: str


@dataclass(frozen=True)
class Comment:
    text: str
    # Consecutive comment lines read together are one item: a flood of ":"
    # lines costs one object a chunk, not one a line. ``text`` is the last one's.
    repeat: int = 1


@dataclass(frozen=True)
class Retry:
    milliseconds: int


@dataclass(frozen=True)
class Invalid:
    """A field whose value breaks the rules (``retry`` not all digits): ignored."""

    field: str
    reason: str


@dataclass(frozen=True)
class Oversized:
    """A line or an event exceeded its bound and was dropped."""

    what: str  # "line" | "event"


@dataclass(frozen=True)
class IdCleared:
    """An empty ``id:`` field: the server resets the id to resume from (WHATWG)."""


Item = Event | Comment | Retry | Invalid | Oversized | IdCleared


class SseDecoder:
    def __init__(self, *, max_line: int = MAX_LINE, max_event: int = MAX_EVENT) -> None:
        self._max_line = max_line
        self._max_event = max_event
        # Whole comment lines, each within the line bound; a CR last in the
        # chunk may be half of a CRLF, so it is left to the line-by-line path.
        self._comments = re.compile(rf"(?::[^\r\n]{{0,{max_line - 1}}}(?:\r\n|\n|\r(?=[\s\S])))+")
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._started = False  # BOM check pending until the first character
        self._line: list[str] = []
        self._line_len = 0
        self._discarding_line = False
        self._after_cr = False  # a CR ended the last line; a following LF is part of it
        self._data: list[str] = []
        self._data_len = 0
        self._event_too_big = False
        self._type = ""
        self._id_buffer = ""
        self._id_cleared = False  # this block's id: field was empty
        self.last_event_id = ""
        self.retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[Item]:
        return self._text(self._utf8.decode(chunk))

    def close(self) -> list[Item]:
        """End of stream: flush the decoder; an unfinished event is discarded."""
        self._text(self._utf8.decode(b"", final=True))
        self._line, self._line_len = [], 0
        self._reset_event()
        return []

    # -- internals ----------------------------------------------------------

    def _text(self, text: str) -> list[Item]:
        if not text:
            return []
        if not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")
        out: list[Item] = []
        start = 0
        length = len(text)
        # The next CR and LF at or after ``start``, looked up again only once
        # passed: a chunk of many short lines is one scan, not one per line.
        cr = lf = -1
        while start < length:
            if self._after_cr:
                self._after_cr = False
                if text[start] == "\n":
                    start += 1
                    continue
            if not self._line and not self._discarding_line and text.startswith(":", start):
                run = self._comments.match(text, start)
                if run is not None:
                    self._comment_run(run.group(), out)
                    start = run.end()
                    continue
            if cr != length and cr < start:
                cr = text.find("\r", start)
                cr = length if cr == -1 else cr
            if lf != length and lf < start:
                lf = text.find("\n", start)
                lf = length if lf == -1 else lf
            end = min(cr, lf)
            if end == length:
                self._append(text[start:], out)
                break
            self._append(text[start:end], out)
            self._end_line(out)
            if text[end] == "\r":
                self._after_cr = True
            start = end + 1
        return out

    def _comment_run(self, run: str, out: list[Item]) -> None:
        """Several whole comment lines at once (all terminated within this chunk)."""
        lines = run.count("\n") + run.count("\r") - run.count("\r\n")
        body = run.rstrip("\r\n")
        last = body[max(body.rfind("\n"), body.rfind("\r")) + 1 :]
        out.append(Comment(last[1:], lines))

    def _append(self, piece: str, out: list[Item]) -> None:
        if self._discarding_line or not piece:
            return
        self._line_len += len(piece)
        if self._line_len > self._max_line:
            self._line, self._line_len = [], 0
            self._discarding_line = True
            out.append(Oversized("line"))
            return
        self._line.append(piece)

    def _end_line(self, out: list[Item]) -> None:
        if self._discarding_line:
            # The rest of an oversized line; the event it belonged to is spoiled.
            self._discarding_line = False
            self._event_too_big = True
            return
        line = "".join(self._line)
        self._line, self._line_len = [], 0
        self._process(line, out)

    def _process(self, line: str, out: list[Item]) -> None:
        if line == "":
            self._dispatch(out)
            return
        if line.startswith(":"):
            out.append(Comment(line[1:]))
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data_len += len(value) + 1
            if self._data_len > self._max_event:
                if not self._event_too_big:
                    out.append(Oversized("event"))
                self._event_too_big = True
                self._data = []
            elif not self._event_too_big:
                self._data.append(value)
        elif name == "event":
            self._type = value
        elif name == "id" and "\x00" not in value:
            self._id_buffer = value
            self._id_cleared = not value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                digits = value.lstrip("0")[: MAX_RETRY_DIGITS + 1] or "0"
                self.retry_ms = min(int(digits), 10**MAX_RETRY_DIGITS)
                out.append(Retry(self.retry_ms))
            else:
                out.append(Invalid("retry", f"not a number of milliseconds: {value[:20]!r}"))
        # Any other field name is ignored, as the standard says.

    def _dispatch(self, out: list[Item]) -> None:
        self.last_event_id = self._id_buffer
        if self._id_cleared:
            out.append(IdCleared())
            self._id_cleared = False
        if not self._event_too_big and self._data:
            out.append(Event(self._type or "message", "\n".join(self._data), self.last_event_id))
        self._reset_event()

    def _reset_event(self) -> None:
        self._data, self._data_len = [], 0
        self._type = ""
        self._event_too_big = False
