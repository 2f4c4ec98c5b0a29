"""The API docs at ``/docs``: Swagger UI served from the package, never from a CDN.

FastAPI's default ``/docs`` page loads Swagger UI's script and stylesheet from a CDN, so on a
machine without internet access (or behind a strict Content-Security-Policy) it is a blank page.
Here the page is FastAPI's own (``get_swagger_ui_html``) and its assets are the Swagger UI
distribution that the ``swagger-ui-bundle-v2`` package ships, served under ``/docs/assets``.
Every URL on the page starts with the request's ``root_path``, so the docs work as well when
jobstream is mounted under a prefix or served behind a proxy's sub-path. ReDoc is not served: it
would need a second bundle for the same content.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS = "/docs"
ASSETS = "/docs/assets"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"

SWAGGER_UI_PARAMETERS = {
    # The default validator badge asks validator.swagger.io about the spec: a request to the
    # internet from every page view.
    "validatorUrl": None,
}


def mount_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (build the app with ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT}",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.add_route(DOCS, docs, methods=["GET"], include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT, oauth2_redirect, methods=["GET"], include_in_schema=False)


__all__ = ["mount_docs"]
