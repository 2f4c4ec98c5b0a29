"""Every setting, with its environment variable (``JOBSTREAM_`` + the field name in capitals).

The names are fixed by SPEC section 8: deployments and scripts depend on them. Nothing here runs
at import time; ``Settings()`` reads the environment when it is called.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBSTREAM_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path(".jobstream")
    store_url: str | None = None
    """Default: a SQLite file in ``data_dir``."""
    bus_url: str = "memory://"
    redis_prefix: str = Field(default="jobstream:", min_length=1)
    """Of every Redis key and channel jobstream makes (``JOBSTREAM_REDIS_PREFIX``)."""

    auth: Literal["none", "jwt"] | None = None
    """Default: ``none`` on a loopback bind. ``none`` elsewhere needs ``allow_insecure_auth``."""
    allow_insecure_auth: bool = False
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] | None = None
    jwt_audience: str | None = None

    demo_jobs: bool = True
    kinds: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Import paths ``module:function`` of callables that register job kinds on a ``Registry``
    (comma-separated in ``JOBSTREAM_KINDS``)."""
    demo_speed: float = Field(default=1.0, gt=0)
    workers: int = Field(default=4, ge=0)
    """Embedded worker concurrency; 0 runs the server without embedded workers."""
    lease_seconds: float = Field(default=30.0, gt=0)
    external_kinds: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Kinds run by workers outside jobstream over HTTP (``POST /api/v1/workers/claim``),
    comma-separated in ``JOBSTREAM_EXTERNAL_KINDS``; their params are any JSON object."""
    max_events_per_job: int = Field(default=1000, ge=10)
    celery_broker_url: str | None = None
    """Set: the server hands each new job to Celery (``jobstream worker --celery`` runs it)."""
    celery_queue: str = Field(default="jobstream", min_length=1)
    """The Celery queue jobstream's jobs are sent to and its Celery workers consume."""

    sse_ping_seconds: float = Field(default=15.0, gt=0)
    sse_retry_ms: int = Field(default=2000, ge=0)
    stream_timeout_seconds: float = Field(default=600.0, gt=0)
    stream_send_timeout_seconds: float = Field(default=30.0, gt=0)
    """How long a write to a stream may block (its reader stopped reading) before the stream is
    dropped; the backlog bound and the time limit also drop it while a write blocks."""
    ws_ping_seconds: float = Field(default=30.0, gt=0)
    ws_idle_timeout_seconds: float = Field(default=300.0, gt=0)
    ws_max_connections: int = Field(default=100, ge=0)
    ws_compression: bool = False
    """permessage-deflate on WebSocket streams (``jobstream serve``; off: see serve.py)."""
    max_streams: int = Field(default=10_000, ge=0)
    max_streams_per_user: int = Field(default=50, ge=0)
    stream_backlog_soft: int = Field(default=256, ge=1)
    stream_backlog_hard: int = Field(default=4096, ge=2)
    max_wait_seconds: float = Field(default=60.0, gt=0)
    feed_catch_up_limit: int = Field(default=10_000, ge=0)
    """Events an all-jobs stream replays when it resumes; past it, a snapshot of every job whose
    events it skips."""

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    submit_rate_per_minute: int = Field(default=600, ge=0)
    """Job submissions per user per minute (0: no limit)."""
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    initial_credits: int = Field(default=1000, ge=0)
    ticket_seconds: float = Field(default=60.0, gt=0, le=60.0)
    result_link_seconds: float = Field(default=3600.0, gt=0)
    shutdown_grace_seconds: float = Field(default=3.0, ge=0)

    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line (``jobstream serve --log-format``)."""
    log_progress_seconds: float = Field(default=5.0, gt=0)
    """A running job's progress is logged at most this often."""

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        """Resolved once, when the settings are read: a relative folder (the default
        ``./.jobstream``) means the one in the working directory the server started in."""
        return value.expanduser().resolve()

    @field_validator("allowed_origins", "kinds", "external_kinds", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite+aiosqlite:///{self.data_dir / 'jobstream.db'}"

    @property
    def loopback(self) -> bool:
        host = self.host.strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def auth_mode(self) -> Literal["none", "jwt"]:
        if self.auth is not None:
            return self.auth
        return "jwt" if (self.jwt_secret or self.jwt_public_key) else "none"

    @property
    def embedded_store(self) -> bool:
        """A SQLite store in a file belongs to one server process, which may recover all of it."""
        return self.resolved_store_url.startswith("sqlite")

    def check(self) -> None:
        """Raise ``ValueError`` with a message that says what to fix."""
        if self.auth_mode == "none" and not self.loopback and not self.allow_insecure_auth:
            raise ValueError(
                f"refusing to serve without authentication on {self.host}: bind to 127.0.0.1, "
                "set JOBSTREAM_AUTH=jwt with JOBSTREAM_JWT_SECRET, or force it with "
                "--allow-insecure-auth / JOBSTREAM_ALLOW_INSECURE_AUTH=1"
            )
        if self.auth_mode == "jwt" and not (self.jwt_secret or self.jwt_public_key):
            raise ValueError(
                "JOBSTREAM_AUTH=jwt needs JOBSTREAM_JWT_SECRET (HS256) or "
                "JOBSTREAM_JWT_PUBLIC_KEY (RS256/ES256)"
            )
        if self.jwt_secret is not None and len(self.jwt_secret.encode()) < 32:
            raise ValueError(
                "JOBSTREAM_JWT_SECRET must be at least 32 bytes for HS256 (RFC 7518 section 3.2); "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        if self.stream_backlog_hard <= self.stream_backlog_soft:
            raise ValueError(
                "JOBSTREAM_STREAM_BACKLOG_HARD must be above JOBSTREAM_STREAM_BACKLOG_SOFT"
            )
