"""The ``jobstream`` command as a user runs it, against real servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
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


UNREACHABLE = (
    "jobstream: cannot reach {url} (connection refused); is `jobstream serve` running? "
    "use --server or JOBSTREAM_SERVER"
)


def test_jobs_submit_and_watch_without_a_server_say_so_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for command in (["jobs"], ["submit", "pdf"], ["submit", "pdf", "--watch"], ["watch", "x"]):
        out = jobstream(*command, "--server", url)
        assert out.returncode == 1, (command, out.stderr)
        assert out.stderr.splitlines() == [UNREACHABLE.format(url=url)], command
        assert out.stdout == "", command
    # The same from JOBSTREAM_SERVER.
    out = jobstream("jobs", env={"JOBSTREAM_SERVER": url})
    assert out.stderr.splitlines() == [UNREACHABLE.format(url=url)]
    not_a_url = jobstream("jobs", "--server", "127.0.0.1:8000")
    assert not_a_url.returncode == 2
    assert not_a_url.stderr.splitlines() == [
        "jobstream: --server must be an http:// or https:// URL, not '127.0.0.1:8000'"
    ]


def test_watch_takes_a_job_id_that_starts_with_a_dash(server: ServerProcess) -> None:
    # One id in 64 starts with "-" (URL-safe base64); it was refused as an unknown option.
    out = jobstream("watch", "-_dashed", "--server", server.url, "--token", token("cli"))
    assert out.returncode == 1
    assert out.stderr.splitlines() == ["jobstream: HTTP 404: job '-_dashed' not found"]


def test_jobs_shows_whole_ids_when_piped_at_80_columns(server: ServerProcess) -> None:
    common = ["--server", server.url, "--token", token("cli-ids")]
    ids = [jobstream("submit", "pdf", "-p", "pages=2", *common).stdout.strip() for _ in range(3)]
    assert all(len(job_id) == 22 for job_id in ids), ids
    listed = jobstream("jobs", *common, env={"COLUMNS": "80"})  # stdout is a pipe here
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "kind", "status"]
    assert [line.split()[0] for line in lines[1:4]] == ids[::-1]  # newest first, whole
    assert all(line.split()[1] == "pdf" for line in lines[1:4])


def test_jobs_json_prints_the_page_and_its_cursor_continues_it(server: ServerProcess) -> None:
    common = ["--server", server.url, "--token", token("cli-json")]
    ids = [jobstream("submit", "pdf", "-p", "pages=2", *common).stdout.strip() for _ in range(2)]
    first = jobstream("jobs", "--json", "--limit", "1", *common)
    assert first.returncode == 0, first.stderr
    page = json.loads(first.stdout)
    assert [job["id"] for job in page["items"]] == [ids[1]]
    assert page["items"][0]["links"]["self"] == f"/api/v1/jobs/{ids[1]}"
    assert page["next_cursor"]
    rest = json.loads(jobstream("jobs", "--json", "--cursor", page["next_cursor"], *common).stdout)
    assert [job["id"] for job in rest["items"]] == [ids[0]] and rest["next_cursor"] is None
    bad = jobstream("jobs", "--cursor", "not-a-cursor", *common)
    assert bad.returncode == 1 and "HTTP 400" in bad.stderr and "Traceback" not in bad.stderr


def test_watch_ends_with_the_results_download_url(server: ServerProcess) -> None:
    secret = token("cli-download")
    common = ["--server", server.url, "--token", secret]
    job_id = jobstream("submit", "video", "-p", "prompt=a small fox", *common).stdout.strip()
    watched = jobstream("watch", job_id, *common, env={"COLUMNS": "80"})
    assert watched.returncode == 0, watched.stderr
    url = f"{server.url}/api/v1/jobs/{job_id}/result"
    assert watched.stdout.splitlines()[-1] == f"download: {url}"
    video = httpx.get(url, headers={"Authorization": f"Bearer {secret}"}, timeout=10)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"


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


def serve_fails(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``jobstream serve`` with ``env``, expected to stop at start."""
    port = str(free_port())
    data = str(tmp_path / "data")
    out = jobstream("serve", "--data-dir", data, "--port", port, env=env, timeout=30)
    assert out.returncode == 2, out.stderr
    return out


def test_serve_without_asyncpg_names_the_postgres_extra(tmp_path: Path) -> None:
    out = serve_fails(
        tmp_path,
        {
            **_without_driver(tmp_path, "asyncpg"),
            "JOBSTREAM_AUTH": "none",
            "JOBSTREAM_STORE_URL": "postgresql://app:s3cret-pw@127.0.0.1:5432/jobs",
        },
    )
    assert out.stderr.strip().splitlines() == [
        "jobstream: the store URL postgresql://… needs the asyncpg driver, which is not "
        "installed: pip install 'jobstream[postgres]'"
    ]
    assert "s3cret-pw" not in out.stderr + out.stdout


def test_serve_without_redis_names_the_redis_extra(tmp_path: Path) -> None:
    out = serve_fails(
        tmp_path,
        {
            **_without_driver(tmp_path, "redis"),
            "JOBSTREAM_AUTH": "none",
            "JOBSTREAM_BUS_URL": "redis://127.0.0.1:6379/0",
        },
    )
    assert out.stderr.strip().splitlines() == [
        "jobstream: the bus URL redis://… needs the redis driver, which is not installed: "
        "pip install 'jobstream[redis]'"
    ]


def test_serve_with_an_unknown_bus_url_says_so_in_one_line(tmp_path: Path) -> None:
    out = serve_fails(
        tmp_path, {"JOBSTREAM_AUTH": "none", "JOBSTREAM_BUS_URL": "kafka://127.0.0.1:9092"}
    )
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert "unknown bus URL scheme 'kafka'" in out.stderr
