"""The server as the README starts it: no ``--data-dir``, so its data lands in the relative
default ``./.jobstream`` of the working directory it was started in.

Every earlier test passed an absolute temporary folder, which hid that a stored artifact path
was relative and got the data folder prefixed twice: every download answered 409.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from serverproc import ROOT, ServerProcess, bearer

MAGIC = {
    "video/mp4": lambda body: body[4:8] == b"ftyp",
    "application/pdf": lambda body: body.startswith(b"%PDF-"),
    "image/png": lambda body: body.startswith(b"\x89PNG"),
    "audio/wav": lambda body: body.startswith(b"RIFF") and body[8:12] == b"WAVE",
}


async def finished(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    async with asyncio.timeout(60):
        while job["status"] not in ("completed", "failed", "cancelled"):
            url = f"/api/v1/jobs/{job_id}?wait=10&after_seq={job['seq']}"
            job = (await client.get(url)).json()
    assert job["status"] == "completed", job
    return job


def check_file(response: httpx.Response, media_type: str) -> None:
    assert response.status_code == 200, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith(media_type)
    assert MAGIC[media_type](response.content), response.content[:16]


@pytest.fixture
def readme_server(tmp_path: Path) -> ServerProcess:
    proc = ServerProcess(tmp_path / "workdir", default_data_dir=True).start()
    yield proc
    proc.stop()


async def test_every_output_downloads_under_the_default_data_folder(
    readme_server: ServerProcess,
) -> None:
    server = readme_server
    async with httpx.AsyncClient(base_url=server.url, headers=bearer("newcomer"), timeout=30) as c:
        submitted = {
            "video": (
                await c.post("/api/v1/jobs", json={"kind": "video", "params": {"prompt": "a fox"}})
            ).json(),
            "pdf": (
                await c.post("/api/v1/jobs", json={"kind": "pdf", "params": {"pages": 2}})
            ).json(),
        }
        for media in ("image", "audio", "video"):
            body = {"kind": "media", "params": {"media_type": media}}
            submitted[f"media-{media}"] = (await c.post("/api/v1/jobs", json=body)).json()
        seed000 = (await c.post("/generate", json={"prompt": "a cat at noon"})).json()["job_id"]
        seed002 = (
            await c.post("/api/v1/videos/generate", json={"prompt": "a heron over a lake"})
        ).json()["id"]

        expected = {
            "video": "video/mp4",
            "pdf": "application/pdf",
            "media-image": "image/png",
            "media-audio": "audio/wav",
            "media-video": "video/mp4",
        }
        for name, job in submitted.items():
            await finished(c, job["id"])
            check_file(await c.get(f"/api/v1/jobs/{job['id']}/result"), expected[name])
        check_file(await c.get(f"/api/jobs/{submitted['pdf']['id']}/download"), "application/pdf")

        await finished(c, seed000)
        check_file(await c.get(f"/result/{seed000}"), "video/mp4")

        await finished(c, seed002)
        video_url = (await c.get(f"/api/v1/videos/{seed002}")).json()["video_url"]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:  # like <video>
        check_file(await anonymous.get(video_url), "video/mp4")

    # The data is where the README says, and the store keeps paths relative to it.
    assert (server.cwd / ".jobstream" / "jobstream.db").is_file()
    with sqlite3.connect(server.cwd / ".jobstream" / "jobstream.db") as db:
        paths = [row[0] for row in db.execute("SELECT artifact_path FROM jobstream_jobs")]
    assert paths and all(p and not Path(p).is_absolute() for p in paths), paths
    assert all(p.startswith("artifacts/") for p in paths), paths
    for path in paths:
        assert (server.cwd / ".jobstream" / path).is_file()


@pytest.fixture
def wheel_site(tmp_path: Path) -> Path:
    """A folder holding jobstream installed from its wheel (the test venv supplies the deps)."""
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(ROOT)], check=True)
    (wheel,) = wheels.glob("jobstream-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    where = subprocess.run(
        [sys.executable, "-c", "import jobstream; print(jobstream.__file__)"],
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(site), where
    return site


async def test_a_wheel_serves_the_ui_and_its_downloads_under_the_default_data_folder(
    tmp_path: Path, wheel_site: Path
) -> None:
    """What ``pip install jobstream`` gets: the built package (UI files included), not the
    source tree."""
    site = wheel_site
    server = ServerProcess(
        tmp_path / "workdir", default_data_dir=True, python_path=[str(site)]
    ).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=bearer("w"), timeout=30) as c:
            page = await c.get("/")
            assert page.status_code == 200 and '<div id="root">' in page.text
            scripts = [part.split('"')[0] for part in page.text.split('src="')[1:]]
            assert scripts, page.text
            for script in scripts:
                asset = await c.get(script if script.startswith("/") else f"/{script}")
                assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
            job = (
                await c.post("/api/v1/jobs", json={"kind": "pdf", "params": {"pages": 1}})
            ).json()
            await finished(c, job["id"])
            check_file(await c.get(f"/api/v1/jobs/{job['id']}/result"), "application/pdf")
    finally:
        server.stop()
