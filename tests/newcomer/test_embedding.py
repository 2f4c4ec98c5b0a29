"""jobstream mounted inside a host FastAPI app (``tests/embedhost.py``), on a real server.

Mounted, a sub-app's lifespan never ran (every request: 500 "the store is not started"), its
links pointed at ``/api/v1/...`` instead of under the mount, and its UI loaded ``/assets/...``
(the UI in Chromium: ``tests/browser/test_embedded_ui.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from hostproc import HostServer
from serverproc import SECRET, ServerProcess, token
from ssehelp import collect


@pytest.fixture
def host(tmp_path: Path) -> Iterator[HostServer]:
    server = HostServer(tmp_path / "workdir")
    yield server
    server.stop()


async def test_a_mounted_jobstream_runs_and_links_under_its_prefix(host: HostServer) -> None:
    async with httpx.AsyncClient(base_url=host.url, timeout=30) as client:
        assert (await client.get("/")).json() == {"app": "host", "lifespans": ["host"]}

        body = {"kind": "resize", "params": {"images": ["a.png", "b.png", "c.png", "d.png"]}}
        response = await client.post("/progress/api/v1/jobs", json=body)
        assert response.status_code == 202, response.text
        job = response.json()
        root = f"/progress/api/v1/jobs/{job['id']}"
        assert job["links"] == {
            "self": root,
            "events": f"{root}/events",
            "ws": f"{root}/ws",
            "result": f"{root}/result",
        }
        assert response.headers["location"] == root

        events = await collect(client, job["links"]["events"] + "?last_event_id=0")
        assert [e.event for e in events][-1] == "completed"
        assert [int(e.id or 0) for e in events] == list(range(1, len(events) + 1))
        completed = events[-1].json["data"]
        assert completed["output_path"] == f"{root}/result" and completed["result"] == {
            "resized": 4
        }
        download = await client.get(completed["output_path"])
        assert download.status_code == 200 and download.text == "resized 4 images\n"

        (snapshot,) = await collect(client, job["links"]["events"])
        assert snapshot.json["data"]["links"]["result"] == f"{root}/result"

        listed = (await client.get("/progress/api/v1/jobs")).json()["items"]
        assert [j["id"] for j in listed] == [job["id"]]

        # A host route of its own starts a job; its watch URL is under the mount.
        started = (await client.post("/orders/o7/thumbnails")).json()
        watched = await collect(client, started["watch"])
        assert watched[-1].event == "completed"

        ui = await client.get("/progress/")
        assert ui.status_code == 200 and "text/html" in ui.headers["content-type"]

    ws_url = f"ws://127.0.0.1:{host.port}{root}/ws"
    async with connect(ws_url) as ws:
        snapshot_message = json.loads(await ws.recv())
    assert snapshot_message["type"] == "snapshot"
    assert snapshot_message["data"]["links"]["self"] == root


async def test_the_mounted_ui_has_its_base_at_the_prefix_and_its_assets_load(
    host: HostServer,
) -> None:
    async with httpx.AsyncClient(base_url=host.url, timeout=30) as client:
        for page in ("/progress/", "/progress/new", "/progress/jobs/some-id"):
            response = await client.get(page)
            assert response.status_code == 200, page
            assert '<base href="/progress/" />' in response.text, response.text
        assets = re.findall(r'(?:src|href)="\./(assets/[^"]+)"', response.text)
        assert len(assets) >= 2, response.text
        for asset in assets:
            assert (await client.get(f"/progress/{asset}")).status_code == 200, asset
            assert (await client.get(f"/{asset}")).status_code == 404  # the host's root


async def test_the_ui_at_the_root_has_its_base_at_the_root(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for page in ("/", "/new", "/jobs/some-id"):
            response = await client.get(page)
            assert response.status_code == 200
            assert response.text.count("<base ") == 1
            assert '<base href="/" />' in response.text


def test_a_mounted_sign_in_cookie_is_scoped_to_the_prefix(tmp_path: Path) -> None:
    host = HostServer(
        tmp_path / "jwt-host", {"JOBSTREAM_AUTH": "jwt", "JOBSTREAM_JWT_SECRET": SECRET}
    )
    try:
        with httpx.Client(base_url=host.url, timeout=30) as client:
            signed = client.post("/progress/api/v1/session", json={"token": token("alice")})
            assert signed.status_code == 200, signed.text
            attributes = [a.strip() for a in signed.headers["set-cookie"].split(";")]
            assert "Path=/progress" in attributes, attributes
            me = client.get("/progress/api/v1/session")
            assert me.status_code == 200 and me.json()["sub"] == "alice"
            job = client.post(
                "/progress/api/v1/jobs",
                json={"kind": "resize", "params": {"images": ["a.png"]}},
                headers={"Origin": host.url},
            )
            assert job.status_code == 202, job.text
    finally:
        host.stop()
