"""Does a stream behave the same under granian as under uvicorn? Two checks, on each server.

- ``stall``: a reader that stops reading (4 KB receive buffer, never reads) on a job reporting
  4 KB messages every millisecond, with ``JOBSTREAM_STREAM_SEND_TIMEOUT_SECONDS=2``: how long
  until the server counted it dropped (``jobstream_stalled_disconnects_total``), whether the
  client then saw the connection closed, and the server process's open file descriptors before
  the stream, while it was stalled, and after it was dropped. Under uvicorn the stream aborts
  its transport (``streams/connection.py``); elsewhere it can only end the response.
- ``sigterm``: ``--streams`` SSE streams open on a running job, then SIGTERM to the server: the
  seconds until every stream had ended and until the process exited.

    .venv/bin/python benchmarks/asgi_checks.py            # both checks, uvicorn then granian
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ASGI_SERVERS, BenchServer, machine_info, raise_fd_limit


def sse_request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """Read until the server closed the connection (EOF or a reset); False on a timeout."""
    sock.settimeout(within)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if not sock.recv(1 << 20):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


def check_stall(asgi: str) -> dict[str, Any]:
    env = {"JOBSTREAM_STREAM_SEND_TIMEOUT_SECONDS": "2"}
    with BenchServer("jobstream", env=env, asgi_server=asgi) as server:
        proc = psutil.Process(server.app_pid)
        job = server.submit({"count": 1_000_000, "interval_ms": 1, "pad": 4000})
        fds_before = proc.num_fds()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(sse_request(f"/api/v1/jobs/{job['id']}/events"))
        started = time.monotonic()
        time.sleep(1.0)
        fds_stalled = proc.num_fds()
        dropped_after = None
        while time.monotonic() - started < 30:
            if server.metric("jobstream_stalled_disconnects_total") >= 1:
                dropped_after = round(time.monotonic() - started, 2)
                break
            time.sleep(0.1)
        time.sleep(1.0)
        fds_dropped = proc.num_fds()
        open_streams = server.metric("jobstream_open_streams")
        # what a stalled peer sees: is the connection gone while it still does not read?
        server_side = [
            c
            for c in proc.net_connections(kind="tcp")
            if c.laddr and c.laddr.port == server.port and c.status == psutil.CONN_ESTABLISHED
        ]
        closed = closed_by_peer(sock, 15)
        sock.close()
        httpx_cancel(server, job["id"])
    return {
        "asgi_server": asgi,
        "check": "stall",
        "dropped_after_s": dropped_after,
        "open_streams_after": int(open_streams),
        "server_connections_still_established": len(server_side),
        "fds_before": fds_before,
        "fds_stalled": fds_stalled,
        "fds_after_drop": fds_dropped,
        "client_saw_close": closed,
    }


def httpx_cancel(server: BenchServer, job_id: str) -> None:
    import httpx

    httpx.post(f"{server.url}/api/v1/jobs/{job_id}/cancel", timeout=10)


def check_sigterm(asgi: str, streams: int) -> dict[str, Any]:
    server = BenchServer("jobstream", asgi_server=asgi)
    server.start()
    socks: list[socket.socket] = []
    try:
        job = server.submit({"interval_ms": 100, "duration": 600})
        request = sse_request(f"/api/v1/jobs/{job['id']}/events")
        for _ in range(streams):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(request)
            socks.append(sock)
        for sock in socks:
            sock.settimeout(30)
            sock.recv(65536)  # the response head and the snapshot
        time.sleep(0.5)
        opened = int(server.metric("jobstream_open_streams"))
        assert server.proc is not None
        sent = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        ended = 0
        last_end = None
        for sock in socks:
            if closed_by_peer(sock, max(0.1, 30 - (time.monotonic() - sent))):
                ended += 1
                last_end = time.monotonic() - sent
        try:
            server.proc.wait(timeout=max(1.0, 40 - (time.monotonic() - sent)))
            exited = round(time.monotonic() - sent, 2)
        except Exception:
            exited = None
    finally:
        for sock in socks:
            sock.close()
        server.stop()
    return {
        "asgi_server": asgi,
        "check": "sigterm",
        "streams_open": opened,
        "streams_ended": ended,
        "last_stream_ended_s": round(last_end, 2) if last_end is not None else None,
        "process_exited_s": exited,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("check", nargs="?", choices=["stall", "sigterm", "all"], default="all")
    parser.add_argument("--asgi-server", choices=[*ASGI_SERVERS, "both"], default="both")
    parser.add_argument("--streams", type=int, default=1000)
    args = parser.parse_args()
    raise_fd_limit()
    servers = list(ASGI_SERVERS) if args.asgi_server == "both" else [args.asgi_server]
    rows = []
    for asgi in servers:
        if args.check in {"stall", "all"}:
            rows.append(check_stall(asgi))
        if args.check in {"sigterm", "all"}:
            rows.append(check_sigterm(asgi, args.streams))
    print(json.dumps({"machine": machine_info(), "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
