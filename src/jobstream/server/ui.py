"""The web UI: the built files in ``jobstream/web`` (``web/`` is their source), served at ``/``
and at every client-side route (``/jobs/{id}``, ``/new``) so a reload lands on the page.

The build refers to everything relative to the page's ``<base href>`` (its assets, the API, its
own routes), and ``index.html`` is served with that tag set to the app's root as the client
reaches it: ``/``, or the prefix it is mounted under (``scope["root_path"]``, e.g.
``/progress/``), so the same build works at any path.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
PAGES = ("/", "/jobs/{job_id}", "/new")
_BASE_TAG = re.compile(r"<base\s[^>]*>", re.IGNORECASE)


def with_base(page: str, root_path: str) -> str:
    """``page`` with its ``<base href>`` set to ``root_path`` + ``/`` (added if it has none)."""
    tag = f'<base href="{html.escape(root_path.rstrip("/") + "/", quote=True)}" />'
    if _BASE_TAG.search(page):
        return _BASE_TAG.sub(lambda _: tag, page, count=1)
    return page.replace("<head>", f"<head>\n    {tag}", 1)


def mount_ui(app: FastAPI) -> None:
    index = WEB_DIR / "index.html"
    if (WEB_DIR / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=WEB_DIR / "assets"), name="assets")

    async def ui(request: Request) -> Response:
        if index.is_file():
            page = with_base(index.read_text(encoding="utf-8"), request.scope.get("root_path", ""))
            return HTMLResponse(page, headers={"Cache-Control": "no-cache"})
        return HTMLResponse(
            "<!doctype html><title>jobstream</title><h1>jobstream</h1>"
            "<p>The web UI is not built. The API is at <a href='docs'>/docs</a>.</p>"
        )

    for path in PAGES:
        app.add_route(path, ui, methods=["GET"], include_in_schema=False)


__all__ = ["WEB_DIR", "mount_ui", "with_base"]
