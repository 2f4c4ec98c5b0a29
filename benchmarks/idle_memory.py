"""Resident memory per idle SSE connection.

For each mode a real server is started (see ``harness.py``) with one ``bench`` job that never
reports (its start file never appears), then a separate client process opens a few warm-up
connections, the server's RSS is read (psutil), N more idle SSE connections are opened to that
job and held until each has its first event, and the RSS is read again:
KB per connection = (RSS after - RSS before) / N. The RSS after every connection closed is
printed too (memory the allocator keeps for reuse is not a leak).

Modes: ``jobstream`` (``/api/v1/jobs/{id}/events``), ``queue`` (a plain FastAPI
``StreamingResponse`` over an ``asyncio.Queue`` per subscriber), ``poll`` (seed 000: a
``StreamingResponse`` that re-reads the job every 0.5 s; with thousands of streams the polling
itself keeps a core busy). ``both`` = jobstream and queue; ``all`` adds poll.

``--asgi-server granian`` serves the same app under granian (``both``: uvicorn, then granian);
the RSS is that of the process running the app (granian's worker; its supervisor's own RSS is
printed beside it).

    .venv/bin/python benchmarks/idle_memory.py --connections 5000
    .venv/bin/python benchmarks/idle_memory.py --connections 5000 --asgi-server both
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    ASGI_SERVERS,
    BenchServer,
    cpu_plan,
    machine_info,
    raise_fd_limit,
    set_affinity,
    wait_until_quiet,
)

PATHS = {
    "jobstream": ("jobstream", "/api/v1/jobs/{id}/events"),
    "queue": ("baseline", "/baseline/queue/{id}"),
    "poll": ("baseline", "/baseline/poll/{id}"),
    "websocket": ("jobstream", "/api/v1/jobs/{id}/ws"),
    "websocket-deflate": ("jobstream", "/api/v1/jobs/{id}/ws"),
}
WS_HEAD = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)
SERVER_ENV = {"websocket-deflate": {"JOBSTREAM_WS_COMPRESSION": "1"}}
"""A mode's server settings: permessage-deflate is off by default."""


class IdleConnection(asyncio.Protocol):
    """Holds a stream open; ready once the response head and a first event arrived."""

    def __init__(self, request: bytes, opened: asyncio.Future[None] | None) -> None:
        self.request = request
        self.buffer = b""
        self.ok: bool | None = None
        self.opened = opened
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.ok is not None:
            return  # idle: nothing more is kept
        self.buffer += data
        if self.buffer.startswith(b"HTTP/1.1 101"):  # a WebSocket: the head, then a frame
            head = self.buffer.find(b"\r\n\r\n")
            if head >= 0 and len(self.buffer) > head + 4:
                self.ok = True
                self.buffer = b""
                self._settle()
        elif b"\n\n" in self.buffer:
            self.ok = self.buffer.startswith(b"HTTP/1.1 200")
            self.buffer = b""
            self._settle()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ok is None:
            self.ok = False
            self._settle()
        self.transport = None

    def _settle(self) -> None:
        if self.opened is not None and not self.opened.done():
            self.opened.set_result(None)


def _factory(protocol: asyncio.Protocol) -> Callable[[], asyncio.Protocol]:
    return lambda: protocol


async def open_many(port: int, request: bytes, n: int) -> list[IdleConnection]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(100)
    conns: list[IdleConnection] = []

    async def one() -> None:
        async with gate:
            for attempt in range(30):
                opened: asyncio.Future[None] = loop.create_future()
                conn = IdleConnection(request, opened)
                try:
                    await loop.create_connection(_factory(conn), "127.0.0.1", port)
                    await asyncio.wait_for(opened, timeout=60)
                except (OSError, TimeoutError):
                    if conn.transport is not None:
                        conn.transport.close()
                    await asyncio.sleep(0.05 * (attempt + 1))
                    continue
                conns.append(conn)
                return

    await asyncio.gather(*(one() for _ in range(n)))
    return conns


async def hold(conf: dict[str, Any], pipe: Any) -> None:
    loop = asyncio.get_running_loop()
    path = conf["path"].format(id=conf["job_id"])
    if conf["mode"].startswith("websocket"):
        extension = "permessage-deflate" if conf["mode"] == "websocket-deflate" else ""
        head = WS_HEAD + (f"Sec-WebSocket-Extensions: {extension}\r\n" if extension else "")
    else:
        head = "Accept: text/event-stream\r\n"
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{conf['port']}\r\n{head}\r\n".encode()
    warm = await open_many(conf["port"], request, conf["warm"])
    pipe.send(("warm", sum(1 for c in warm if c.ok)))
    await loop.run_in_executor(None, pipe.recv)
    started = time.monotonic()
    conns = await open_many(conf["port"], request, conf["connections"])
    pipe.send(
        (
            "open",
            {
                "opened": sum(1 for c in conns if c.ok),
                "refused": sum(1 for c in conns if not c.ok),
                "open_seconds": round(time.monotonic() - started, 2),
            },
        )
    )
    await loop.run_in_executor(None, pipe.recv)
    still = sum(1 for c in conns if c.transport is not None)
    for conn in warm + conns:
        if conn.transport is not None:
            conn.transport.close()
    await asyncio.sleep(0.5)
    pipe.send(("closed", still))


def client_main(conf: dict[str, Any], pipe: Any) -> None:
    set_affinity(0, conf["cpus"])
    raise_fd_limit()
    try:
        import uvloop

        uvloop.run(hold(conf, pipe))
    except ImportError:
        asyncio.run(hold(conf, pipe))


def expect(pipe: Any, kind: str, timeout: float) -> Any:
    if not pipe.poll(timeout):
        raise TimeoutError(f"the client process sent no {kind!r} within {timeout} s")
    got, payload = pipe.recv()
    if got != kind:
        raise RuntimeError(f"expected {kind!r} from the client process, got {got!r}")
    return payload


def settled_rss(server: BenchServer, seconds: float) -> int:
    """The server's RSS once it stopped moving (the last of a few samples)."""
    time.sleep(seconds)
    samples = []
    for _ in range(5):
        samples.append(server.rss_bytes())
        time.sleep(0.2)
    return samples[-1]


def run_mode(name: str, args: argparse.Namespace, asgi: str) -> dict[str, Any]:
    flavour, path = PATHS[name]
    server_cpus, client_cpus = args.server_cpus, args.client_cpus
    server = BenchServer(
        flavour, cpus=server_cpus, src=args.src, asgi_server=asgi, env=SERVER_ENV.get(name)
    )
    server.start()
    try:
        quiet = wait_until_quiet(args.wait_quiet)
        server_affinity = sorted(psutil.Process(server.app_pid).cpu_affinity())
        supervisor = (
            psutil.Process(server.pid).memory_info().rss if server.pid != server.app_pid else 0
        )
        never = server.tmp / "never"  # the job waits for this file, which never appears
        job = server.submit({"start_file": str(never), "start_timeout": 86_400})
        conf = {
            "mode": name,
            "path": path,
            "job_id": job["id"],
            "port": server.port,
            "warm": args.warm,
            "connections": args.connections,
            "cpus": client_cpus,
        }
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=client_main, args=(conf, child), daemon=True)
        proc.start()
        warm = expect(parent, "warm", 120)
        before = settled_rss(server, args.settle)
        parent.send("go")
        opened = expect(parent, "open", 600)
        after = settled_rss(server, args.settle)
        streams = server.metric("jobstream_open_streams") if flavour == "jobstream" else None
        parent.send("close")
        still_open = expect(parent, "closed", 120)
        closed = settled_rss(server, args.settle)
        proc.join(timeout=10)
    except BaseException:
        print(server.log_tail(), file=sys.stderr)
        raise
    finally:
        server.stop()
    n = opened["opened"]
    return {
        "asgi_server": asgi,
        "supervisor_rss_mb": round(supervisor / 2**20, 1) if supervisor else None,
        "mode": name,
        "connections": args.connections,
        "warm": warm,
        **opened,
        "still_open_at_end": still_open,
        "server_open_streams": int(streams) if streams is not None else None,
        "server_cpus": server_affinity,
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "rss_closed_mb": round(closed / 2**20, 1),
        "kb_per_connection": round((after - before) / 1024 / n, 1) if n else None,
        **quiet,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Server RSS per idle SSE connection.")
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--mode", choices=[*PATHS, "both", "all", "ws"], default="both")
    parser.add_argument("--warm", type=int, default=20, help="connections opened before 'before'")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before reading RSS")
    parser.add_argument("--wait-quiet", type=float, default=0.0)
    parser.add_argument("--asgi-server", choices=[*ASGI_SERVERS, "both"], default="uvicorn")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--src", metavar="DIR")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    limit = raise_fd_limit()
    if args.connections + args.warm + 100 > limit:
        parser.error(f"{args.connections} connections need more than the fd limit ({limit})")
    # Decide the split once, before this process pins itself to the load generator's core.
    args.server_cpus, args.client_cpus = cpu_plan(not args.no_pin)
    set_affinity(0, args.client_cpus)
    names = {
        "both": ["jobstream", "queue"],
        "all": ["jobstream", "queue", "poll"],
        "ws": ["jobstream", "websocket", "websocket-deflate"],
    }.get(args.mode, [args.mode])
    servers = list(ASGI_SERVERS) if args.asgi_server == "both" else [args.asgi_server]
    rows = [run_mode(name, args, asgi) for name in names for asgi in servers]
    if args.json:
        print(
            json.dumps(
                {"machine": machine_info(), "args": vars(args), "runs": rows},
                indent=2,
                default=lambda o: sorted(o) if isinstance(o, set) else str(o),
            )
        )
        return
    header = [
        "server",
        "mode",
        "connections",
        "opened",
        "RSS before MB",
        "RSS after MB",
        "KB/connection",
        "RSS closed MB",
        "supervisor RSS MB",
    ]
    keys = [
        "asgi_server",
        "mode",
        "connections",
        "opened",
        "rss_before_mb",
        "rss_after_mb",
        "kb_per_connection",
        "rss_closed_mb",
        "supervisor_rss_mb",
    ]
    cells = [header] + [[str(r[k]) for k in keys] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    for j, row in enumerate(cells):
        print(" | ".join(c.rjust(w) if j else c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if j == 0:
            print("-+-".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
