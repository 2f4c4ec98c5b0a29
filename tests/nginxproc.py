"""A real nginx (Debian's, installed by ``scripts/ensure-nginx``) running ``deploy/nginx.conf``
in front of given instances, in a folder of its own."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from serverproc import ROOT, free_port
from services import require_service

CONFIG = ROOT / "deploy" / "nginx.conf"


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        require_service("nginx", "no nginx binary (bash scripts/ensure-nginx installs it)")
    assert found is not None
    return found


def render(upstreams: list[int], port: int) -> str:
    """``deploy/nginx.conf`` with these instances and this listening port."""
    text = CONFIG.read_text()
    servers = "\n".join(
        f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstreams
    )
    text = re.sub(
        r"(?m)^        server 127\.0\.0\.1:\d+ .*;\n(?:        server .*;\n)*", servers + "\n", text
    )
    return re.sub(r"listen\s+127\.0\.0\.1:\d+;", f"listen       127.0.0.1:{port};", text)


class NginxProcess:
    def __init__(self, folder: Path, upstreams: list[int], port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (folder / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf = folder / "nginx.conf"
        self.conf.write_text(render(upstreams, self.port))
        self.log_path = folder / "nginx.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NginxProcess:
        binary = nginx_binary()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [binary, "-p", str(self.folder), "-c", str(self.conf), "-g", "daemon off;"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{self.log_path.read_text()}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


__all__ = ["CONFIG", "NginxProcess", "render"]
