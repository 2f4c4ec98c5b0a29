"""The web UI: the built files in ``jobstream/web`` (``web/`` is their source), served at ``/``
and at every client-side route (``/jobs/{id}``, ``/new``) so a reload lands on the page."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
PAGES = ("/", "/jobs/{job_id}", "/new")


def mount_ui(app: FastAPI) -> None:
    index = WEB_DIR / "index.html"
    if (WEB_DIR / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=WEB_DIR / "assets"), name="assets")

    async def ui(request: Request) -> Response:
        if index.is_file():
            return FileResponse(
                index, media_type="text/html", headers={"Cache-Control": "no-cache"}
            )
        return HTMLResponse(
            "<!doctype html><title>jobstream</title><h1>jobstream</h1>"
            "<p>The web UI is not built. The API is at <a href='docs'>/docs</a>.</p>"
        )

    for path in PAGES:
        app.add_route(path, ui, methods=["GET"], include_in_schema=False)


__all__ = ["WEB_DIR", "mount_ui"]
