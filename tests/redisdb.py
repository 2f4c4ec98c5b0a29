"""Redis for tests: a key prefix of a test's own on the local Redis (its keys removed after, by
``SCAN``, never ``FLUSHALL``), and a private ``redis-server`` on a port of its own for tests that
stop and restart Redis.

The local server comes from ``JOBSTREAM_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``).
Unreachable Redis skips the test, or fails it when ``CI=true``.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis.asyncio as aioredis

from serverproc import free_port
from services import env_url, require_service

REDIS_URL = env_url("JOBSTREAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def reachable(url: str = REDIS_URL) -> aioredis.Redis:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        require_service("Redis", f"cannot reach {url}: {type(exc).__name__}: {exc}")
    return client


@asynccontextmanager
async def redis_prefix(url: str = REDIS_URL) -> AsyncIterator[str]:
    """A fresh key prefix on ``url``; every key under it is deleted afterwards."""
    client = await reachable(url)
    prefix = f"jobstream-test-{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        async for key in client.scan_iter(match=f"{prefix}*", count=500):
            await client.delete(key)
        await client.aclose()


class RedisServer:
    """A ``redis-server`` of one test's own (no persistence), which it may stop and restart."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            require_service("Redis", "no redis-server binary to start a private one")
        assert binary is not None
        self.binary = binary
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            probe = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
            )
            if probe.stdout.strip() == "PONG":
                return self
            assert time.monotonic() < deadline, "the private redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


__all__ = ["REDIS_URL", "RedisServer", "reachable", "redis_prefix"]
