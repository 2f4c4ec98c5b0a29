"""Where things are, as the client sees it: every URL the API hands out is built here.

A server mounted under a prefix (``app.mount("/progress", create_app(...))``, or behind a proxy
with ``--root-path``) gets that prefix in ``scope["root_path"]``; every link (a job's ``links``,
a result's ``output_path``, the profiles' download URLs) starts with it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import HTTPConnection

from jobstream.models import Job

API = "/api/v1"


class Links:
    __slots__ = ("base",)

    def __init__(self, base: str = "") -> None:
        self.base = base.rstrip("/")

    def url(self, path: str) -> str:
        """``path`` (from the server's root, starting with ``/``) as the client reaches it."""
        return self.base + path

    def job(self, job_id: str) -> dict[str, str]:
        root = f"{self.base}{API}/jobs/{job_id}"
        return {
            "self": root,
            "events": f"{root}/events",
            "ws": f"{root}/ws",
            "result": f"{root}/result",
        }

    def public_job(self, job: Job) -> dict[str, Any]:
        """The job object of the API, with its ``links``."""
        body = job.to_public()
        body["links"] = self.job(job.id)
        return body


def links_for(conn: HTTPConnection) -> Links:
    return Links(conn.scope.get("root_path", ""))


async def _links(conn: HTTPConnection) -> Links:
    return links_for(conn)  # async: a plain ``def`` dependency runs on a worker thread


LinksDep = Annotated[Links, Depends(_links)]

__all__ = ["API", "Links", "LinksDep", "links_for"]
