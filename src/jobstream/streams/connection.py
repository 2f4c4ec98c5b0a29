"""A stream's connection: its body run outside the routing stack, its client's disconnect, and
dropping it when its reader stopped reading.

**Detached bodies.** A streaming response runs inside every frame of the stack that routed it
(the server's task, each middleware, the router, the route's exit stacks and request objects),
and keeps them all for as long as the stream is open: most of an idle stream's memory. So the
outermost app (``create_app``'s ``JobstreamApp``) offers each HTTP request and WebSocket a slot
(``DETACH``): an SSE response sends its response start through the stack as usual (middleware
see it), a WebSocket stream its accept; then it puts its body in the slot and returns, the stack
unwinds, and the outermost app runs the body with the server's own ``receive``/``send``.
Routing, auth, refusals, errors and the response start are the one routed path; only where the
body's frames live changes. The app offers the slot only when no
middleware of its own wraps body messages (a user's ``add_middleware`` other than the ones
``create_app`` adds turns it off), since such a middleware would no longer see them.

**Dropping a reader that stopped reading.**

A write to such a reader blocks in the server's flow control, and closing it the ASGI way
(ending the response) leaves the server's transport open with its buffer unsent for as long
as the peer keeps the TCP window shut: a file descriptor and its buffers held for good. So a
stalled stream aborts its transport. ASGI has no message for that; the server's own ``send``
(captured by ``create_app``'s app before any middleware wraps it) belongs to an object that
holds the transport in uvicorn (HTTP and WebSocket). Elsewhere the stream still ends, and the
server closes the connection the usual way.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Protocol

from starlette.types import Receive, Scope, Send

TRANSPORT = "jobstream.transport"
DETACH = "jobstream.detach"
ASGI_SCOPE_KEYS = (
    "type",
    "asgi",
    "http_version",
    "scheme",
    "method",
    "path",
    "client",
    "server",
    "state",
    TRANSPORT,
)
"""What a detached body's scope keeps when the app is the server's own: the request's identity
(what a server may log of it), not its headers or the routing stack's additions (its exit
stacks among them). Ten keys, the most a dict holds at its smallest size (272 bytes)."""


class DetachedBody(Protocol):
    def run_body(self, scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]: ...
    async def discard(self) -> None: ...


def detach_body(scope: Scope, body: DetachedBody) -> bool:
    """Hand ``body`` to the outermost app to run once the stack has returned; ``False`` when
    this request has no slot (the caller then runs it in place)."""
    slot: list[DetachedBody] | None = scope.get(DETACH)
    if slot is None or slot:
        return False
    slot.append(body)
    return True


def compact_scope(scope: Scope) -> None:
    """Keep only the ASGI keys of a detached body's scope (the routing stack's additions, its
    exit stacks among them, are let go; the table the additions grew is freed)."""
    kept = {key: scope[key] for key in ASGI_SCOPE_KEYS if key in scope}
    scope.clear()
    scope.update(kept)


def remember_raw_send(scope: Scope, send: Send) -> None:
    """Keep the server's transport in the scope, found through its own ``send`` (the outermost
    app calls this, before any middleware wraps ``send``). The transport, not the bound method:
    the server's connection object holds the scope, so a reference to the method would make a
    reference cycle of every connection (and a weak one costs two objects per connection), while
    a transport lets go of its protocol when the connection closes."""
    if TRANSPORT not in scope:
        owner = getattr(send, "__self__", None)
        scope[TRANSPORT] = getattr(owner, "transport", None)


def abort_connection(scope: Scope) -> bool:
    """Abort the request's TCP connection now, unsent data and all; ``False`` if the server
    does not let us."""
    abort = getattr(scope.get(TRANSPORT), "abort", None)
    if not callable(abort):
        return False
    abort()
    return True


__all__ = [
    "DETACH",
    "TRANSPORT",
    "abort_connection",
    "compact_scope",
    "detach_body",
    "remember_raw_send",
]
