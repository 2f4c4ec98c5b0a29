"""Reading SSE streams in tests: parsed events, with the raw bytes kept for exact comparisons."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

TERMINAL = {"completed", "failed", "cancelled"}


@dataclass
class SSEEvent:
    event: str | None
    data: str
    id: str | None
    raw: bytes = field(default=b"", repr=False)

    @property
    def json(self) -> Any:
        return json.loads(self.data)


def parse_block(block: bytes) -> SSEEvent | None:
    event = id_ = None
    data: list[str] = []
    for line in block.decode().split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            id_ = value
    if not data:
        return None
    return SSEEvent(event, "\n".join(data), id_, block)


class SSEReader:
    """Iterates the events of an open streaming response, block by block."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._buffer = b""
        self._bytes = response.aiter_raw()
        self.chunks: list[bytes] = []

    async def next(self) -> SSEEvent | None:
        """The next event, or ``None`` when the server closed the stream."""
        while True:
            sep = self._buffer.find(b"\n\n")
            if sep >= 0:
                block, self._buffer = self._buffer[:sep], self._buffer[sep + 2 :]
                parsed = parse_block(block)
                if parsed is not None:
                    return parsed
                continue
            try:
                chunk = await self._bytes.__anext__()
            except StopAsyncIteration:
                return None
            self.chunks.append(chunk)
            self._buffer += chunk

    async def until_end(self) -> list[SSEEvent]:
        events = []
        while (event := await self.next()) is not None:
            events.append(event)
        return events


async def collect(client: httpx.AsyncClient, url: str, **kwargs: Any) -> list[SSEEvent]:
    """Every event of a stream until the server closes it."""
    async with client.stream("GET", url, **kwargs) as response:
        assert response.status_code == 200, (response.status_code, await response.aread())
        return await SSEReader(response).until_end()
