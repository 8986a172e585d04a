"""The core is mypy-clean (STYLE.md: annotations everywhere, `mypy` clean on sched_lab/core)."""

import pathlib
import subprocess
import sys

CORE = pathlib.Path(__file__).resolve().parents[2] / "sched_lab" / "core"


def test_core_is_mypy_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", str(CORE)],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
