"""Who is calling: JWT (HS256 secret, or an RS256/ES256 public key, the algorithm pinned) or
``none`` for a loopback development server, where every caller is the local admin.

A token may come from ``Authorization: Bearer``, ``?token=`` (EventSource and browser
WebSockets cannot send headers; the server's access log redacts it), a ``jobstream_token``
cookie, or ``?ticket=`` (a single-use stream ticket valid for at most a minute).

The cookie is the browser's sign-in (``POST /api/v1/session`` sets it). A browser sends it by
itself, so a state change authenticated by it alone is a possible cross-site request forgery:
it must carry an ``Origin`` that is the server's own or in ``JOBSTREAM_ALLOWED_ORIGINS``
(``check_origin``). A header or ``?token=`` cannot be sent by another site's page, and a GET
(a stream included) changes nothing, so neither is checked. A WebSocket handshake with the
cookie and a foreign ``Origin`` is refused too: unlike a cross-origin ``fetch``, a socket's
messages are readable by the page that opened it (browsers always send ``Origin`` there; a
client without one is not a browser page).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import jwt

from jobstream.models import Job
from jobstream.settings import Settings

LOCAL_USER = "local"
COOKIE = "jobstream_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AuthError(Exception):
    """Missing or bad credentials (401 / WebSocket 4401)."""


class Forbidden(Exception):
    """Authenticated, but this role may not do that (403)."""


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str
    roles: frozenset[str] = frozenset()
    expires_at: int | None = field(default=None, compare=False)
    """The token's ``exp`` (Unix seconds); ``None`` with auth ``none``."""
    ticket_id: str | None = field(default=None, compare=False)
    """Set when a stream ticket authenticated the caller: its ``jti``, which the caller of
    ``authenticate`` redeems (once, across instances: ``Limits.redeem_ticket``)."""

    @property
    def admin(self) -> bool:
        return "admin" in self.roles

    @property
    def reporter_only(self) -> bool:
        return "reporter" in self.roles and not self.admin and "user" not in self.roles

    def can_see(self, job: Job) -> bool:
        return self.admin or job.owner == self.sub

    @property
    def owner_filter(self) -> str | None:
        """The owner whose jobs this caller lists: ``None`` (everyone's) for an admin."""
        return None if self.admin else self.sub


@dataclass(frozen=True, slots=True)
class RequestOrigin:
    """What the cookie's CSRF check needs from an HTTP request: its method, its ``Origin``
    header, and the server's own origin as the client reached it (scheme and ``Host``)."""

    method: str
    origin: str | None
    own_origin: str
    websocket: bool = False

    @property
    def changes_state(self) -> bool:
        return self.method.upper() not in SAFE_METHODS


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without a default port or a trailing slash."""
    value = origin.strip().rstrip("/").lower()
    for scheme, port in (("http://", ":80"), ("https://", ":443")):
        if value.startswith(scheme) and value.endswith(port):
            return value[: -len(port)]
    return value


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (``None`` without a header)."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError("the Authorization header must be 'Bearer <token>'")
    return value.strip()


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.mode = settings.auth_mode
        self._secret = settings.jwt_secret
        self._public_key = settings.jwt_public_key
        self._audience = settings.jwt_audience
        if settings.jwt_algorithm is not None:
            self._algorithm = settings.jwt_algorithm
        else:
            self._algorithm = "HS256" if self._secret else "RS256"
        self._ticket_seconds = settings.ticket_seconds
        self._allowed_origins = frozenset(normalize_origin(o) for o in settings.allowed_origins)

    def authenticate(
        self,
        *,
        authorization: str | None,
        query: Mapping[str, str],
        cookies: Mapping[str, str],
        request: RequestOrigin | None = None,
    ) -> Principal:
        """The caller. ``request`` (an HTTP request's method and origins) turns on the CSRF
        check for a state change that only the cookie authenticates (``Forbidden``)."""
        if self.mode == "none":
            return Principal(LOCAL_USER, frozenset({"admin"}))
        ticket = query.get("ticket")
        if ticket:
            return self.redeem_ticket(ticket)
        token = bearer_token(authorization) or query.get("token")
        if token:
            return self.decode(token)
        token = cookies.get(COOKIE)
        if not token:
            raise AuthError(
                "authentication required: send 'Authorization: Bearer <token>' "
                "(or ?token= for EventSource and WebSocket, or sign in: POST /api/v1/session)"
            )
        principal = self.decode(token, cookie=True)
        if request is not None and request.changes_state:
            self.check_origin(request)
        elif request is not None and request.websocket:
            self.check_origin(request, required=False)
        return principal

    def check_origin(self, request: RequestOrigin, *, required: bool = True) -> None:
        """CSRF: ``Forbidden`` unless the request's ``Origin`` is the server's own or allowed
        (``JOBSTREAM_ALLOWED_ORIGINS``); a request without one passes only if not ``required``."""
        if request.origin is None:
            if not required:
                return
            raise Forbidden(
                f"{request.method} with the sign-in cookie needs an Origin header (a browser "
                "sends it): send the token as 'Authorization: Bearer <token>' instead"
            )
        origin = normalize_origin(request.origin)
        if origin == normalize_origin(request.own_origin) or origin in self._allowed_origins:
            return
        if "*" in self._allowed_origins:
            return
        raise Forbidden(
            f"cross-site request refused: origin {request.origin!r} is neither this server's "
            f"({request.own_origin}) nor in JOBSTREAM_ALLOWED_ORIGINS"
        )

    def decode(self, token: str, *, cookie: bool = False) -> Principal:
        """The principal of a token; ``AuthError`` saying why it is refused (``cookie``: the
        token came from the sign-in cookie, and the message says to sign in again)."""
        again = "; sign in again (POST /api/v1/session)" if cookie else ""
        key = self._secret if self._algorithm == "HS256" else self._public_key
        if key is None:  # pragma: no cover - Settings.check refuses this configuration
            raise AuthError("the server has no key to check tokens with")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[self._algorithm],
                audience=self._audience,
                options={"require": ["sub", "exp"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(f"the token has expired{again}") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}{again}") from None
        if claims.get("typ") == "ticket":
            raise AuthError(
                "a stream ticket is not an access token: it goes in ?ticket= to open a stream"
            )
        return _principal(claims)

    def mint(self, sub: str, roles: list[str] | None = None, ttl_seconds: float = 86400) -> str:
        """A token for ``sub`` (HS256 only: minting needs the secret)."""
        if not self._secret:
            raise ValueError("minting tokens needs JOBSTREAM_JWT_SECRET")
        now = int(time.time())
        claims = {"sub": sub, "roles": roles or [], "iat": now, "exp": now + int(ttl_seconds)}
        return jwt.encode(claims, self._secret, algorithm="HS256")

    # -- stream tickets -----------------------------------------------------------------------

    def issue_ticket(self, principal: Principal) -> tuple[str, int]:
        if self.mode == "none":
            return "none", int(self._ticket_seconds)
        if not self._secret:
            raise Forbidden("stream tickets need JOBSTREAM_JWT_SECRET on the server")
        now = time.time()
        claims = {
            "sub": principal.sub,
            "roles": sorted(principal.roles),
            "typ": "ticket",
            "jti": secrets.token_urlsafe(12),
            "exp": int(now + self._ticket_seconds),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), int(self._ticket_seconds)

    def redeem_ticket(self, ticket: str) -> Principal:
        if not self._secret:
            raise AuthError("this server does not issue stream tickets")
        try:
            claims = jwt.decode(
                ticket, self._secret, algorithms=["HS256"], options={"require": ["exp", "jti"]}
            )
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid or expired stream ticket: {exc}") from None
        if claims.get("typ") != "ticket":
            raise AuthError("not a stream ticket")
        return replace(_principal(claims), ticket_id=str(claims["jti"]))


def _principal(claims: Mapping[str, object]) -> Principal:
    roles = claims.get("roles") or []
    if isinstance(roles, str):
        roles = [roles]
    if not isinstance(roles, list):
        raise AuthError("the token's 'roles' claim must be a list")
    exp = claims.get("exp")
    expires_at = int(exp) if isinstance(exp, int | float) else None
    return Principal(str(claims["sub"]), frozenset(str(r) for r in roles), expires_at)
