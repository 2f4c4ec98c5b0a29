import subprocess
import sys

import jobstream


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert jobstream.__all__ == sorted(jobstream.__all__)
    for name in jobstream.__all__:
        assert getattr(jobstream, name) is not None


def test_importing_the_model_does_not_load_the_server() -> None:
    code = "import sys, jobstream.models; print('fastapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
