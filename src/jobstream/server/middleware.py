"""Pure-ASGI middleware (no per-request wrapper objects kept in a stream's frames)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobstream.server.errors import error_response


class BodySizeLimit:
    """413 for a request body over the limit, by its Content-Length or as it streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, f"request body too large: at most {self.max_bytes} bytes")
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


__all__ = ["BodySizeLimit"]
