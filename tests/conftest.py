from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from serverproc import ServerProcess


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server (jwt auth, demo speed 20) shared by the tests that only use its API."""
    proc = ServerProcess(tmp_path_factory.mktemp("server")).start()
    yield proc
    proc.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Servers of a test's own, with its own settings; all stopped after the test."""
    started: list[ServerProcess] = []

    def make(
        env: dict[str, str] | None = None, data_dir: Path | None = None, port: int | None = None
    ) -> ServerProcess:
        proc = ServerProcess(data_dir or tmp_path / f"data{len(started)}", env, port)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.kill()
