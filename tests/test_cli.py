"""The ``jobstream`` command as a user runs it, against real servers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jwt

from serverproc import SECRET, ServerProcess, free_port, token


def jobstream(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobstream", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "120", **(env or {})},
    )


def test_token_mints_a_jwt_the_server_accepts() -> None:
    out = jobstream(
        "token", "--sub", "cli-user", "--role", "admin", env={"JOBSTREAM_JWT_SECRET": SECRET}
    )
    assert out.returncode == 0, out.stderr
    claims = jwt.decode(out.stdout.strip(), SECRET, algorithms=["HS256"])
    assert (
        claims["sub"] == "cli-user" and claims["roles"] == ["admin"] and claims["exp"] > time.time()
    )
    missing = jobstream("token", "--sub", "x", env={"JOBSTREAM_JWT_SECRET": ""})
    assert missing.returncode == 2 and "JOBSTREAM_JWT_SECRET" in missing.stderr


def test_submit_watch_and_jobs(server: ServerProcess) -> None:
    common = ["--server", server.url, "--token", token("cli")]
    submitted = jobstream("submit", "character", "-p", "name=Ada", "-p", "age=36", *common)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    watched = jobstream("watch", job_id, *common)
    assert watched.returncode == 0, watched.stderr
    assert "completed" in watched.stdout and "characterId" in watched.stdout
    # The whole history, though the job ended before the watch began.
    assert "Validating character details: Ada" in watched.stdout
    listed = jobstream("jobs", *common)
    assert job_id in listed.stdout and "completed" in listed.stdout
    failing = jobstream("submit", "pdf", "-p", "fail_at_step=1", "--watch", *common)
    assert failing.returncode == 1
    assert "Pipeline error: PDF extraction failed" in failing.stdout
    bad = jobstream("submit", "pdf", "-p", "pages=lots", *common)
    assert bad.returncode == 1 and "pages" in bad.stderr
    unauthorised = jobstream("jobs", "--server", server.url)
    assert unauthorised.returncode == 1 and "401" in unauthorised.stderr


def test_watch_resumes_across_a_server_restart(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    first = make_server({"JOBSTREAM_DEMO_SPEED": "4"}).start()
    common = ["--server", first.url, "--token", token("cli")]
    job_id = jobstream("submit", "video", "-p", "prompt=restart me", *common).stdout.strip()
    watcher = subprocess.Popen(
        [sys.executable, "-m", "jobstream", "watch", job_id, *common],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    time.sleep(1.5)
    first.kill()
    time.sleep(0.5)
    make_server({"JOBSTREAM_DEMO_SPEED": "4"}, data_dir=first.data_dir, port=first.port).start()
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    assert "completed" in out and "video_path" in out


def test_serve_refuses_no_auth_on_a_public_address(tmp_path: Path) -> None:
    out = jobstream(
        "serve",
        "--host",
        "0.0.0.0",
        "--data-dir",
        str(tmp_path),
        env={"JOBSTREAM_AUTH": "none"},
        timeout=30,
    )
    assert out.returncode == 2
    assert "refusing to serve without authentication" in out.stderr
    short = jobstream(
        "serve",
        "--data-dir",
        str(tmp_path),
        env={"JOBSTREAM_AUTH": "jwt", "JOBSTREAM_JWT_SECRET": "short"},
        timeout=30,
    )
    assert short.returncode == 2 and "at least 32 bytes" in short.stderr


def _without_driver(tmp_path: Path, module: str) -> dict[str, str]:
    """An environment where ``import module`` fails as on an install without the extra: a
    PYTHONPATH folder whose stub package raises ModuleNotFoundError when imported."""
    stubs = tmp_path / "stubs"
    (stubs / module).mkdir(parents=True)
    (stubs / module / "__init__.py").write_text(
        f"raise ModuleNotFoundError({f'No module named {module!r}'!r}, name={module!r})\n"
    )
    return {"PYTHONPATH": os.pathsep.join([str(stubs), os.environ.get("PYTHONPATH", "")])}


def test_serve_without_asyncpg_names_the_postgres_extra(tmp_path: Path) -> None:
    out = jobstream(
        "serve",
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        str(free_port()),
        env={
            **_without_driver(tmp_path, "asyncpg"),
            "JOBSTREAM_AUTH": "none",
            "JOBSTREAM_STORE_URL": "postgresql://app:s3cret-pw@127.0.0.1:5432/jobs",
        },
        timeout=30,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        "jobstream: the store URL postgresql://… needs the asyncpg driver, which is not "
        "installed: pip install 'jobstream[postgres]'"
    ]
    assert "s3cret-pw" not in out.stderr + out.stdout


def test_serve_without_redis_names_the_redis_extra(tmp_path: Path) -> None:
    out = jobstream(
        "serve",
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        str(free_port()),
        env={
            **_without_driver(tmp_path, "redis"),
            "JOBSTREAM_AUTH": "none",
            "JOBSTREAM_BUS_URL": "redis://127.0.0.1:6379/0",
        },
        timeout=30,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        "jobstream: the bus URL redis://… needs the redis driver, which is not installed: "
        "pip install 'jobstream[redis]'"
    ]


def test_serve_with_an_unknown_bus_url_says_so_in_one_line(tmp_path: Path) -> None:
    out = jobstream(
        "serve",
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        str(free_port()),
        env={"JOBSTREAM_AUTH": "none", "JOBSTREAM_BUS_URL": "kafka://127.0.0.1:9092"},
        timeout=30,
    )
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert "unknown bus URL scheme 'kafka'" in out.stderr
