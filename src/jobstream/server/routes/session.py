"""The browser's sign-in: ``POST /api/v1/session`` turns a token into the ``jobstream_token``
cookie, ``DELETE`` removes it, ``GET`` says who the caller is.

A page's own ``EventSource('/stream/status/…')`` or ``WebSocket('ws://…/ws/jobs/…')`` sends no
header; once signed in, the browser sends the cookie with them by itself. The cookie is
``HttpOnly`` (no script reads it), ``SameSite=Strict`` (another site's page never sends it),
``Path`` = the app's root (its mount prefix, or ``/``), ``Secure`` over HTTPS, and lives no longer
than the token (``Max-Age`` up to its ``exp``). What it authenticates is checked against CSRF in
``Authenticator.authenticate``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from jobstream.errors import BadRequest
from jobstream.models import isoformat
from jobstream.server.auth import COOKIE, AuthError, Forbidden, Principal, bearer_token
from jobstream.server.deps import RuntimeDep, UserDep, request_origin
from jobstream.server.links import API
from jobstream.server.routes.jobs import json_response
from jobstream.server.runtime import Runtime

router = APIRouter(prefix=API, tags=["auth"])


class SignIn(BaseModel):
    token: str = Field(min_length=1, description="An access token (a JWT), without 'Bearer '")


def session_body(rt: Runtime, principal: Principal) -> dict[str, Any]:
    """Who is signed in: ``{"sub", "roles", "expires_at", "auth"}``."""
    expires = principal.expires_at
    return {
        "sub": principal.sub,
        "roles": sorted(principal.roles),
        "expires_at": None if expires is None else isoformat(datetime.fromtimestamp(expires, UTC)),
        "auth": rt.auth.mode,
    }


def cookie_path(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/") or "/"


@router.get("/session", summary="Who the caller is (with auth none: the local admin)")
async def who(rt: RuntimeDep, user: UserDep) -> Response:
    return json_response(session_body(rt, user))


@router.post(
    "/session",
    summary="Sign the browser in: the token (header or body) becomes the jobstream_token cookie",
)
async def sign_in(
    request: Request, rt: RuntimeDep, body: Annotated[SignIn | None, Body()] = None
) -> Response:
    auth = rt.auth
    if auth.mode == "none":
        return json_response(
            session_body(rt, auth.authenticate(authorization=None, query={}, cookies={}))
        )
    origin = request_origin(request)
    # Another site's page must not sign the browser in as someone else (login CSRF).
    auth.check_origin(origin, required=False)
    from_header = bearer_token(request.headers.get("authorization"))
    from_body = body.token.strip() if body else None
    if from_body and from_body[:7].lower() == "bearer ":
        from_body = from_body[7:].strip()
    if from_header and from_body and from_header != from_body:
        raise BadRequest("two different tokens: send one, in the Authorization header or the body")
    token = from_header or from_body
    if not token and "ticket" in request.query_params:
        raise AuthError("a stream ticket opens a stream; it cannot sign a browser in")
    if not token:
        raise AuthError(
            "no token to sign in with: send 'Authorization: Bearer <token>' "
            'or the JSON body {"token": "<token>"}'
        )
    principal = auth.decode(token)
    if principal.reporter_only:
        raise Forbidden("a reporter token may only report progress; it cannot sign in a browser")
    max_age = int((principal.expires_at or 0) - time.time())
    if max_age <= 0:
        raise AuthError("the token has expired")
    response = json_response(session_body(rt, principal))
    response.set_cookie(
        COOKIE,
        token,
        max_age=max_age,
        path=cookie_path(request),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.delete("/session", status_code=204, summary="Sign the browser out: remove the cookie")
async def sign_out(request: Request, rt: RuntimeDep) -> Response:
    if COOKIE in request.cookies:
        rt.auth.check_origin(request_origin(request))
    response = Response(status_code=204)
    response.delete_cookie(
        COOKIE,
        path=cookie_path(request),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


__all__ = ["SignIn", "router", "session_body"]
