"""The host application of ``tests/embedhost.py`` (jobstream mounted at ``/progress``) under a
real uvicorn in a subprocess on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from serverproc import ROOT, free_port


class HostServer:
    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "host.log"
        environ = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "tests"),
            "JOBSTREAM_DEMO_SPEED": "20",
            **(env or {}),
        }
        environ.pop("JOBSTREAM_DATA_DIR", None)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "embedhost:app", "--port", str(self.port)],
                cwd=workdir,
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError(f"the host app did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


__all__ = ["HostServer"]
