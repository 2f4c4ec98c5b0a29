"""The product's own "bad client input" error.

``BadRequest`` is the one exception the server answers with 400 and its message. It is raised
where a client's input is parsed (a ``Last-Event-ID``, a page cursor, a resume position); any
other exception, a ``ValueError`` from a bug included, is a 500 whose traceback is logged.
"""

from __future__ import annotations


class BadRequest(ValueError):
    """A client's input the server refuses: HTTP 400 (WebSocket close 1008) with this message."""


__all__ = ["BadRequest"]
