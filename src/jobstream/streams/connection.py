"""Dropping a connection whose reader stopped reading.

A write to such a reader blocks in the server's flow control, and closing it the ASGI way
(ending the response) leaves the server's transport open with its buffer unsent for as long
as the peer keeps the TCP window shut: a file descriptor and its buffers held for good. So a
stalled stream aborts its transport. ASGI has no message for that; the server's own ``send``
(captured by ``create_app``'s app before any middleware wraps it) belongs to an object that
holds the transport in uvicorn (HTTP and WebSocket). Elsewhere the stream still ends, and the
server closes the connection the usual way.
"""

from __future__ import annotations

import weakref
from typing import Any

from starlette.types import Scope, Send

RAW_SEND = "jobstream.raw_send"


def remember_raw_send(scope: Scope, send: Send) -> None:
    """Keep the server's own ``send`` in the scope (the outermost app calls this). Weakly: the
    server's connection object holds the scope, and a strong reference back to its bound
    method would make a reference cycle of every connection."""
    if RAW_SEND not in scope:
        try:
            scope[RAW_SEND] = weakref.WeakMethod(send)
        except TypeError:  # not a bound method: nothing to abort through
            scope[RAW_SEND] = None


def abort_connection(scope: Scope) -> bool:
    """Abort the request's TCP connection now, unsent data and all; ``False`` if the server
    does not let us."""
    ref = scope.get(RAW_SEND)
    owner: Any = getattr(ref() if ref is not None else None, "__self__", None)
    transport = getattr(owner, "transport", None)
    abort = getattr(transport, "abort", None)
    if not callable(abort):
        return False
    abort()
    return True


__all__ = ["RAW_SEND", "abort_connection", "remember_raw_send"]
