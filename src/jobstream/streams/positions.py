"""Parsing the positions a client resumes from: a ``Last-Event-ID``, ``?after_seq=``,
``?after_cursor=``.

A position is a non-negative integer; anything else is the client's mistake, answered with 400
(WebSocket: close 1008) and a message that says what is wrong. A well-formed position beyond the
log is not an error: the stream sends the snapshot, as on a fresh connect (and closes after it
for a finished job). One too large for the stores' signed 64-bit columns is such a position: it
is read as ``MAX_POSITION``, beyond every log.
"""

from __future__ import annotations

from jobstream.errors import BadRequest
from jobstream.models import MAX_POSITION


def parse_position(raw: str | None, name: str) -> int | None:
    """``raw`` as a position, ``None`` when absent or empty; raises ``BadRequest``."""
    if raw is None:
        return None
    raw = raw.strip()
    if raw == "":
        return None
    if not raw.isdecimal() or not raw.isascii():
        raise BadRequest(f"{name} must be a non-negative integer, not {raw[:40]!r}")
    if len(raw) > 19:  # longer than MAX_POSITION: do not convert a huge number
        return MAX_POSITION
    return min(int(raw), MAX_POSITION)


def parse_last_event_id(header: str | None, query: str | None) -> int | None:
    """The position of an SSE reconnect: the ``Last-Event-ID`` header, else ``?last_event_id=``."""
    return parse_position(header if header is not None else query, "Last-Event-ID")


__all__ = ["MAX_POSITION", "parse_last_event_id", "parse_position"]
