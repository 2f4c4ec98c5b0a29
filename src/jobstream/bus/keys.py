"""Every Redis key and channel jobstream makes, in one place, all under one prefix
(``JOBSTREAM_REDIS_PREFIX``, default ``jobstream:``).

Nothing here is unbounded: the channels hold nothing; a used stream ticket expires with the
ticket; a submit-rate bucket expires once full again; a user's stream counts expire unless the
instances holding them keep renewing them. Nothing is ever listed with ``KEYS``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str = "jobstream:"

    @property
    def events(self) -> str:
        """Channel: every stored event, in batches, from every instance and worker."""
        return f"{self.prefix}events"

    @property
    def control(self) -> str:
        """Channel: control messages between instances (e.g. cancel a running job)."""
        return f"{self.prefix}control"

    def used_ticket(self, jti: str) -> str:
        """String, expiring with the ticket: the ticket was redeemed."""
        return f"{self.prefix}ticket:{jti}"

    def submit_bucket(self, user: str) -> str:
        """Hash ``tokens``/``at``: the user's submit-rate token bucket, expiring when full."""
        return f"{self.prefix}rate:{user}"

    def user_streams(self, user: str) -> str:
        """Hash instance -> open streams of this user there; expires unless renewed."""
        return f"{self.prefix}streams:{user}"

    @property
    def instances(self) -> str:
        """Sorted set instance -> last heartbeat (seconds): which instances' counts still
        count. Members older than a minute are removed by every heartbeat."""
        return f"{self.prefix}instances"


__all__ = ["RedisKeys"]
