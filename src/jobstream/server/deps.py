"""What routes get from the app: its parts (``Runtime``) and the caller (``Principal``).

Every transport authorizes through ``authorize``: the HTTP dependencies below and the
WebSocket runner call the same function, so what a token may do cannot differ between them.
A reporter-only token may report progress (``POST /api/v1/jobs/{id}/events``) and nothing else;
a stream ticket opens a stream (SSE, WebSocket, a long-poll of one job) and nothing else; an HTTP
request that changes state (POST, PUT, PATCH, DELETE) with only the sign-in cookie must come from
an allowed ``Origin`` (the CSRF check of ``Authenticator.authenticate``), and so must a WebSocket
handshake with the cookie that carries an ``Origin``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from jobstream.server.auth import AuthError, Forbidden, Principal, RequestOrigin
from jobstream.server.runtime import Runtime


def runtime(conn: HTTPConnection) -> Runtime:
    rt: Runtime = conn.app.state.jobstream
    return rt


async def _runtime(conn: HTTPConnection) -> Runtime:
    # A dependency that is a plain ``def`` runs on a worker thread: two thread hand-offs, each
    # waiting for the GIL behind a busy loop, on every request.
    return runtime(conn)


def request_origin(conn: HTTPConnection) -> RequestOrigin:
    """A request's method, ``Origin`` and the server's own origin (scheme and ``Host``, as the
    client reached it: behind a proxy, uvicorn's proxy headers set the scheme). A WebSocket
    handshake is a GET from the page's ``http(s)`` origin."""
    websocket = conn.scope["type"] == "websocket"
    scheme = {"ws": "http", "wss": "https"}.get(conn.url.scheme, conn.url.scheme)
    return RequestOrigin(
        method="GET" if websocket else conn.scope["method"],
        origin=conn.headers.get("origin"),
        own_origin=f"{scheme}://{conn.url.netloc}",
        websocket=websocket,
    )


async def authorize(
    conn: HTTPConnection, *, stream: bool = False, reporter: bool = False
) -> Principal:
    """The caller, from a header, ``?token=``, the cookie, or (``stream`` only) ``?ticket=``.

    Raises ``AuthError`` (401 / WebSocket 4401) for missing or bad credentials and ``Forbidden``
    (403 / 4403) when the token's role may not do this: a reporter-only token is refused unless
    ``reporter``, a ticket unless ``stream``; and a state change authenticated by the cookie alone
    unless its ``Origin`` is allowed.
    """
    query = conn.query_params
    if not stream and "ticket" in {key.lower() for key in query}:
        raise AuthError("a stream ticket opens a stream (SSE, WebSocket, long-poll), nothing else")
    rt = runtime(conn)
    principal = rt.auth.authenticate(
        authorization=conn.headers.get("authorization"),
        query=query,
        cookies=conn.cookies,
        request=request_origin(conn),
    )
    if principal.ticket_id is not None and not await rt.limits.redeem_ticket(
        principal.ticket_id, float(principal.expires_at or 0)
    ):
        raise AuthError("this stream ticket was already used")
    if principal.reporter_only and not reporter:
        raise Forbidden("a reporter token may only report progress")
    return principal


async def current_user(request: Request) -> Principal:
    return await authorize(request)


async def stream_user(request: Request) -> Principal:
    return await authorize(request, stream=True)


async def poll_user(request: Request) -> Principal:
    """A job's snapshot: a long-poll (``?wait=``) is a stream, and may use a ticket."""
    return await authorize(request, stream="wait" in request.query_params)


RuntimeDep = Annotated[Runtime, Depends(_runtime)]
UserDep = Annotated[Principal, Depends(current_user)]
StreamUserDep = Annotated[Principal, Depends(stream_user)]
PollUserDep = Annotated[Principal, Depends(poll_user)]

__all__ = [
    "PollUserDep",
    "Runtime",
    "RuntimeDep",
    "StreamUserDep",
    "UserDep",
    "authorize",
    "current_user",
    "request_origin",
    "runtime",
    "stream_user",
]
