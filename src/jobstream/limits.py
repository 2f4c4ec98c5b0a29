"""Limits that must hold across every instance: single-use stream tickets, the per-user submit
rate, and the per-user stream cap.

``MemoryLimits`` counts in this process (one instance). ``RedisLimits`` counts in Redis, under
the bus's prefix (``jobstream.bus.keys``), each check one round trip (a Lua script where a check
and its update must be one step). If Redis does not answer, a check falls back to this
process's own count with a warning: the caps still hold per instance, and no request fails
because a limit could not be counted.

Stream counts survive an instance that dies holding streams: each instance's share of a user's
count is kept under its own name, and counts only while the instance's heartbeat is fresh.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

from jobstream.bus.keys import RedisKeys

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
INSTANCE_TTL_SECONDS = 30.0
"""An instance whose heartbeat is older than this no longer counts towards any user's streams."""


class Limits(abc.ABC):
    async def start(self) -> None:  # noqa: B027 - optional
        """Connect (a shared store of counts)."""

    async def close(self) -> None:  # noqa: B027 - optional
        """Disconnect."""

    @abc.abstractmethod
    async def redeem_ticket(self, ticket_id: str, expires_at: float) -> bool:
        """True the first time a ticket is redeemed anywhere; False after."""

    @abc.abstractmethod
    async def take_submit(self, user: str, per_minute: int) -> float | None:
        """Take one submit from the user's bucket (``per_minute`` a minute, that much burst):
        ``None`` if allowed, else the seconds until it would be."""

    @abc.abstractmethod
    async def open_stream(self, user: str, cap: int) -> bool:
        """Count a new stream of ``user``, if the user has fewer than ``cap`` open."""

    @abc.abstractmethod
    async def close_stream(self, user: str) -> None:
        """A stream counted by ``open_stream`` ended."""


class MemoryLimits(Limits):
    def __init__(self) -> None:
        self._tickets: dict[str, float] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._streams: dict[str, int] = {}

    async def redeem_ticket(self, ticket_id: str, expires_at: float) -> bool:
        return self.redeem_ticket_now(ticket_id, expires_at)

    def redeem_ticket_now(self, ticket_id: str, expires_at: float) -> bool:
        now = time.time()
        if len(self._tickets) > 1024:
            self._tickets = {k: v for k, v in self._tickets.items() if v > now}
        if ticket_id in self._tickets:
            return False
        self._tickets[ticket_id] = expires_at
        return True

    async def take_submit(self, user: str, per_minute: int) -> float | None:
        return self.take_submit_now(user, per_minute)

    def take_submit_now(self, user: str, per_minute: int) -> float | None:
        now = time.monotonic()
        tokens, last = self._buckets.get(user, (float(per_minute), now))
        tokens = min(float(per_minute), tokens + (now - last) * per_minute / 60.0)
        if tokens < 1.0:
            return (1.0 - tokens) * 60.0 / per_minute
        self._buckets[user] = (tokens - 1.0, now)
        return None

    async def open_stream(self, user: str, cap: int) -> bool:
        return self.open_stream_now(user, cap)

    def open_stream_now(self, user: str, cap: int) -> bool:
        count = self._streams.get(user, 0)
        if count >= cap:
            return False
        self._streams[user] = count + 1
        return True

    async def close_stream(self, user: str) -> None:
        self.close_stream_now(user)

    def close_stream_now(self, user: str) -> None:
        left = self._streams.get(user, 0) - 1
        if left > 0:
            self._streams[user] = left
        else:
            self._streams.pop(user, None)


# Token bucket, read and updated in one step. KEYS[1]: the bucket; ARGV: rate, now (seconds).
# Returns -1 when a token was taken, else the seconds until one is there.
_TAKE_SUBMIT = """
local rate = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or rate
local at = tonumber(state[2]) or now
tokens = math.min(rate, tokens + math.max(now - at, 0) * rate / 60)
if tokens < 1 then
  return tostring((1 - tokens) * 60 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], 61)
return '-1'
"""

# KEYS[1]: the user's stream counts (instance -> count); KEYS[2]: instances (heartbeats).
# ARGV: this instance, cap, now, instance TTL. Counts of instances gone silent are dropped.
_OPEN_STREAM = """
local now = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
local counts = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #counts, 2 do
  if redis.call('ZSCORE', KEYS[2], counts[i]) then
    total = total + tonumber(counts[i + 1])
  else
    redis.call('HDEL', KEYS[1], counts[i])
  end
end
if total >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], math.floor(ttl * 2))
return 1
"""

_CLOSE_STREAM = """
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if left <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return left
"""


class RedisLimits(Limits):
    def __init__(self, url: str, prefix: str = "jobstream:") -> None:
        self.url = url
        self.keys = RedisKeys(prefix)
        self.instance = secrets.token_hex(8)
        self.local = MemoryLimits()
        """This process's own counts: the fallback while Redis does not answer."""
        self._redis: Any = None
        self._scripts: dict[str, Any] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._warned = False

    async def start(self) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
        for name, source in (
            ("take", _TAKE_SUBMIT),
            ("open", _OPEN_STREAM),
            ("close", _CLOSE_STREAM),
        ):
            self._scripts[name] = self._redis.register_script(source)
        await self._beat()
        self._heartbeat = asyncio.create_task(self._beat_loop(), name="jobstream-limits")

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.zrem(self.keys.instances, self.instance)
            await self._redis.aclose()
            self._redis = None

    async def _beat(self) -> None:
        """This instance is alive: its stream counts keep counting, and keep their keys."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.instances, {self.instance: time.time()})
            for user in self.local._streams:
                pipe.expire(self.keys.user_streams(user), int(INSTANCE_TTL_SECONDS * 2))
            await pipe.execute()

    async def _beat_loop(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self._beat()
            except Exception as exc:
                log.warning("limits heartbeat to Redis failed: %s", exc)

    def _fallback(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning("Redis does not answer (%s): limits count on this instance only", exc)

    async def redeem_ticket(self, ticket_id: str, expires_at: float) -> bool:
        ttl = max(int(expires_at - time.time()) + 1, 1)
        try:
            first = await self._redis.set(self.keys.used_ticket(ticket_id), 1, nx=True, ex=ttl)
        except Exception as exc:
            self._fallback(exc)
            return self.local.redeem_ticket_now(ticket_id, expires_at)
        self._warned = False
        return bool(first)

    async def take_submit(self, user: str, per_minute: int) -> float | None:
        try:
            wait = float(
                await self._scripts["take"](
                    keys=[self.keys.submit_bucket(user)], args=[per_minute, time.time()]
                )
            )
        except Exception as exc:
            self._fallback(exc)
            return self.local.take_submit_now(user, per_minute)
        return None if wait < 0 else wait

    async def open_stream(self, user: str, cap: int) -> bool:
        try:
            admitted = await self._scripts["open"](
                keys=[self.keys.user_streams(user), self.keys.instances],
                args=[self.instance, cap, time.time(), INSTANCE_TTL_SECONDS],
            )
        except Exception as exc:
            self._fallback(exc)
            return self.local.open_stream_now(user, cap)
        if admitted:
            self.local._streams[user] = self.local._streams.get(user, 0) + 1
        return bool(admitted)

    async def close_stream(self, user: str) -> None:
        self.local.close_stream_now(user)
        try:
            await self._scripts["close"](keys=[self.keys.user_streams(user)], args=[self.instance])
        except Exception as exc:
            self._fallback(exc)


def create_limits(bus_url: str, prefix: str) -> Limits:
    """Shared through Redis when the bus is Redis; else this process's own."""
    if bus_url.split("://", 1)[0] in ("redis", "rediss"):
        return RedisLimits(bus_url, prefix)
    return MemoryLimits()


__all__ = ["Limits", "MemoryLimits", "RedisLimits", "create_limits"]
