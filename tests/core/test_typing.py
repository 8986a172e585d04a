"""The core and records are `mypy --strict` clean (STYLE.md: annotations everywhere; issue 9)."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
STRICT = [ROOT / "sched_lab" / "core", ROOT / "sched_lab" / "records"]


def test_core_and_records_are_mypy_strict_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", *map(str, STRICT)],
                            capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
