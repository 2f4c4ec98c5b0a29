"""Who is calling: JWT (HS256 secret, or an RS256/ES256 public key, the algorithm pinned) or
``none`` for a loopback development server, where every caller is the local admin.

A token may come from ``Authorization: Bearer``, ``?token=`` (EventSource and browser
WebSockets cannot send headers; the server's access log redacts it), a ``jobstream_token``
cookie, or ``?ticket=`` (a single-use stream ticket valid for at most a minute).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

import jwt

from jobstream.models import Job
from jobstream.settings import Settings

LOCAL_USER = "local"
COOKIE = "jobstream_token"


class AuthError(Exception):
    """Missing or bad credentials (401 / WebSocket 4401)."""


class Forbidden(Exception):
    """Authenticated, but this role may not do that (403)."""


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str
    roles: frozenset[str] = frozenset()

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
        self._used_tickets: dict[str, float] = {}

    def authenticate(
        self,
        *,
        authorization: str | None,
        query: Mapping[str, str],
        cookies: Mapping[str, str],
    ) -> Principal:
        if self.mode == "none":
            return Principal(LOCAL_USER, frozenset({"admin"}))
        ticket = query.get("ticket")
        if ticket:
            return self.redeem_ticket(ticket)
        token: str | None = None
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise AuthError("the Authorization header must be 'Bearer <token>'")
            token = value.strip()
        token = token or query.get("token") or cookies.get(COOKIE)
        if not token:
            raise AuthError(
                "authentication required: send 'Authorization: Bearer <token>' "
                "(or ?token= for EventSource and WebSocket)"
            )
        return self.decode(token)

    def decode(self, token: str) -> Principal:
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
            raise AuthError("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        if claims.get("typ") == "ticket":
            raise AuthError("a stream ticket goes in ?ticket=, not as a token")
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
        now = time.time()
        self._used_tickets = {k: v for k, v in self._used_tickets.items() if v > now}
        jti = str(claims["jti"])
        if jti in self._used_tickets:
            raise AuthError("this stream ticket was already used")
        self._used_tickets[jti] = float(claims["exp"])
        return _principal(claims)


def _principal(claims: Mapping[str, object]) -> Principal:
    roles = claims.get("roles") or []
    if isinstance(roles, str):
        roles = [roles]
    if not isinstance(roles, list):
        raise AuthError("the token's 'roles' claim must be a list")
    return Principal(str(claims["sub"]), frozenset(str(r) for r in roles))
