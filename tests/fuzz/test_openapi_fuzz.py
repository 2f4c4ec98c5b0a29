"""Fuzzing the OpenAPI schema against a real server: no generated request gets a 5xx.

Schemathesis (its command line: its pytest plugin does not run on this pytest) generates
requests for every operation of ``/openapi.json`` (valid and invalid bodies, parameters and
headers, in its examples, coverage and fuzzing phases), sends them with a valid token, and
fails on any 5xx. The all-jobs SSE stream is left out: it never ends by design (its error paths
are a job stream's, which is fuzzed). Bounded: ``JOBSTREAM_FUZZ_EXAMPLES`` per operation and
``JOBSTREAM_FUZZ_SECONDS`` in all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from serverproc import ServerProcess, token

EXAMPLES = os.environ.get("JOBSTREAM_FUZZ_EXAMPLES", "40")
SECONDS = os.environ.get("JOBSTREAM_FUZZ_SECONDS", "150")


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_no_generated_request_gets_a_server_error(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    # A server of its own: the jobs it submits must not queue ahead of other tests' jobs.
    # External kinds, a reporter role and a short long-poll bound: the claim and report routes
    # are fuzzed past their role check, and no long-poll (a claim, a snapshot's or an events
    # page's ``wait``) outlasts the fuzzer's request timeout.
    server = make_server(
        {
            "JOBSTREAM_DEMO_SPEED": "100",
            "JOBSTREAM_EXTERNAL_KINDS": "ocr,transcode",
            "JOBSTREAM_MAX_WAIT_SECONDS": "1",
        }
    ).start()
    report = tmp_path / "fuzz.json"
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            EXAMPLES,
            "--max-time",
            SECONDS,
            "--request-timeout",
            "10",
            "--seed",
            "20261201",
            "--exclude-path",
            "/api/v1/events",
            "--header",
            f"Authorization: Bearer {token('fuzzer', ['user', 'reporter'])}",
            "--report",
            "json",
            "--report-json-path",
            str(report),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=380,
    )
    output = run.stdout + run.stderr
    print(output[-4000:])  # the figures, in the test's output
    assert run.returncode == 0, output[-6000:]
    summary = json.loads(report.read_text())
    assert summary, "schemathesis wrote no report"
    assert "Traceback" not in server.log(), server.log()[-4000:]
