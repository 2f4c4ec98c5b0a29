"""Pure-ASGI middleware (no per-request wrapper objects kept in a stream's frames)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobstream.server.errors import error_response


class BodySizeLimit:
    """413 for a request body over the limit, by its Content-Length or, for a chunked body, as
    it streams in: the 413 is sent the moment the limit is passed, the app then reads a client
    disconnect, and whatever it sends afterwards is dropped."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > self.max_bytes:
                    await self._refuse(scope, receive, send)
                    return
            elif name == b"transfer-encoding":
                chunked = True
        if not chunked:
            # The server refuses a body longer than its Content-Length: nothing more to watch
            # (and a stream's every send is not routed through a wrapper).
            await self.app(scope, receive, send)
            return
        seen = 0
        refused = False
        started = False

        async def limited() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    if not started:
                        await self._refuse(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out already
            started = True
            await send(message)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not refused:
                raise
            # The app failed on the body it could not read (ClientDisconnect); answered already.

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, f"request body too large: at most {self.max_bytes} bytes are accepted"
        )
        await response(scope, receive, send)


__all__ = ["BodySizeLimit"]
