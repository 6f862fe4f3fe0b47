"""A deletion listing's body read a window at a time (``amplitude/listing.py``'s fast path).

``json.loads`` first turns the whole body into one string, then builds the whole document: for a
job of a hundred thousand IDs, a 10 MB copy of the body and a list of 100,000 entries, alive at
once, every tracking round (``bench/PROBLEMS.md``, P-8). Here the body is decoded to text 256 KiB
at a time, the outer structure (a job, or an array of jobs, and a job's keys) is walked here, and
every other value (each entry, each other key's value) is decoded on its own by the standard
library's scanner, so an entry goes straight into the job's arrays.

Only the plain shape is read here; anything else (another encoding, a duplicate key, an entry
that is not plainly an ID with its origin, any syntax error) raises :class:`Unusual`, and the
caller decodes the body the ordinary way, so what a body means and what is malformed stay
exactly as ``listing.decode_listing`` says.
"""

from __future__ import annotations

import codecs
import json
import re
from array import array
from collections.abc import Iterator
from json.scanner import make_scanner
from typing import Any

WINDOW = 256 * 1024  # bytes of body decoded to text at a time
_WS = re.compile(r"[ \t\n\r]*")


class Unusual(Exception):
    """The body is not in the plain shape this reader handles (read it the ordinary way)."""


def windows(content: bytes) -> Iterator[bytes]:
    """``content`` in pieces of :data:`WINDOW` bytes."""
    for start in range(0, len(content), WINDOW):
        yield content[start : start + WINDOW]


class Reader:
    """JSON values of one body, read from its pieces (a window of it, or chunks as they arrive)
    as text decoded a piece at a time."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        head = b""
        for piece in pieces:  # the encoding is told by the first four bytes (as json.loads does)
            head += piece
            if len(head) >= 4:
                break
        if json.detect_encoding(head) != "utf-8":
            raise Unusual
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogatepass")
        self._scan = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # the C scanner takes a decoder
        self.buf = self._decoder.decode(head)
        self.pos = 0
        self._ended = False

    def _more(self) -> bool:
        """Decode the next piece onto the text still unread; ``False`` at the end of the body."""
        if self._ended:
            return False
        piece = next(self._pieces, None)
        if piece is None:
            self._ended = True
            text = self._decoder.decode(b"", final=True)
        else:
            text = self._decoder.decode(piece)
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not whitespace ('' at the end of the body), not consumed."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def expect(self, *chars: str) -> str:
        """Consume the next character, which must be one of ``chars``."""
        c = self.peek()
        if not c or c not in chars:
            raise Unusual
        self.pos += 1
        return c

    def value(self) -> Any:
        """The next JSON value, decoded by the standard scanner (more text is decoded when the value
        may reach past the window: a failed scan, or one that ends where the text ends)."""
        self.peek()
        while True:
            try:
                found, end = self._scan(self.buf, self.pos)
            except (StopIteration, ValueError):
                if self._more():
                    continue
                raise Unusual from None
            if end == len(self.buf) and self._more():
                continue
            self.pos = end
            return found


class Origins:
    """A job's entries as they are read: IDs, and per ID the index of its origin pair."""

    def __init__(self) -> None:
        self.ids = array("q")
        self.origin_of = array("I")
        self.index: dict[tuple[str | None, str | None], int] = {}

    def add(self, amplitude_id: int, origin: tuple[str | None, str | None]) -> None:
        self.ids.append(amplitude_id)
        self.origin_of.append(self.index.setdefault(origin, len(self.index)))
