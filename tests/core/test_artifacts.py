"""Artifact paths: stored relative to the data folder; a path that leaves it is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from jobstream.artifacts import resolve_stored, stored_path
from jobstream.models import JobStatus
from jobstream.testing import JobHarness
from jobstream.worker.context import JobContext
from jobstream.worker.registry import Registry


def test_a_stored_path_is_relative_to_the_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert stored_path(data, data / "artifacts" / "j1" / "out.pdf") == "artifacts/j1/out.pdf"
    assert resolve_stored(data, "artifacts/j1/out.pdf") == (data / "artifacts/j1/out.pdf").resolve()
    # Written by an earlier version: absolute, inside the folder.
    inside = str((data / "artifacts" / "j1" / "out.pdf").resolve())
    assert resolve_stored(data, inside) == Path(inside)


@pytest.mark.parametrize("stored", ["../elsewhere.pdf", "artifacts/../../x", "/etc/passwd"])
def test_a_stored_path_that_leaves_the_data_folder_is_refused(tmp_path: Path, stored: str) -> None:
    assert resolve_stored(tmp_path / "data", stored) is None


def test_declaring_a_file_outside_the_data_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data folder"):
        stored_path(tmp_path / "data", tmp_path / "outside.pdf")


class Empty(BaseModel):
    pass


async def test_a_handler_that_declares_an_outside_artifact_fails_with_the_reason(
    tmp_path: Path,
) -> None:
    registry = Registry()
    outside = tmp_path / "outside.txt"
    outside.write_text("x")

    @registry.register("leaky", params=Empty)
    async def leaky(ctx: JobContext, params: Empty) -> None:
        ctx.set_artifact(outside, "text/plain")

    async with JobHarness(registry, data_dir=tmp_path / "data") as harness:
        job = await harness.submit("leaky")
        await harness.run_until_idle()
        done = await harness.get(job.id)
    assert done.status is JobStatus.FAILED
    assert done.artifact is None
    assert "data folder" in (done.error or "")
