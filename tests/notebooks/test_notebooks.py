"""The notebooks execute top to bottom (nbclient, a kernel spec pointing at this interpreter) and show
what they promise: task_interface.ipynb the seed tutorial's outputs on a live cluster (True, the 32
values of f.map, -9) plus dependencies, retries and resubmit, and leaves no cluster process or
temporary directory behind — also when a cell fails; compare_schemes.ipynb its tables, figures and
theory checks; actors.ipynb its Ray-style actors (a counter's calls in order, a named actor from a second
client, a parameter server fed by tasks holding its handle, kill) and its DirectView example (push/pull,
scatter, compute, gather, map, both views at once). Each runs on a temp copy of the notebook with a private TMPDIR, IPYTHONDIR and Jupyter
runtime dir."""

from __future__ import annotations

import ast
import json
import re
import os
import signal
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

pytestmark = pytest.mark.timeout(180)

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL = "sched-lab-test"
F_MAP = [0.0, 10.0, 160.0, 810.0, 2560.0, 6250.0, 12960.0, 24010.0, 40960.0, 65610.0, 100000.0, 146410.0,
         207360.0, 285610.0, 384160.0, 506250.0, 655360.0, 835210.0, 1049760.0, 1303210.0, 1600000.0,
         1944810.0, 2342560.0, 2798410.0, 3317760.0, 3906250.0, 4569760.0, 5314410.0, 6146560.0, 7072810.0,
         8100000.0, 9235210.0]      # In [5] of the seed tutorial, verbatim


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kernel spec for this interpreter, and private temp/IPython/Jupyter dirs the kernel inherits."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "sched-lab test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    for var, sub in (("TMPDIR", "tmp"), ("IPYTHONDIR", "ipython"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("MPLBACKEND", None)):
        if sub is None:
            monkeypatch.setenv(var, "Agg")
            continue
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    return tmp_path


def _cluster_processes(under: Path) -> list[int]:
    """Pids of live real_cluster processes whose $SCHED_LAB_DIR lies under `under`."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"real_cluster" in cmd and any(e.startswith(b"SCHED_LAB_DIR=" + str(under).encode()) for e in env):
            pids.append(int(pid))
    return pids


def _execute(name: str, sandbox: Path, edit=None) -> tuple[nbformat.NotebookNode, list[int], Exception | None]:
    """Run a temp copy of notebooks/`name`; returns it, the cluster pids it left (those are then killed)
    and the CellExecutionError if a cell failed."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    if edit:
        edit(nb)
    work = sandbox / "work"
    work.mkdir(exist_ok=True)
    nbformat.write(nb, work / name)
    nb = nbformat.read(work / name, as_version=4)
    error = None
    try:
        NotebookClient(nb, timeout=120, kernel_name=KERNEL, resources={"metadata": {"path": str(work)}}).execute()
    except CellExecutionError as exc:
        error = exc
    finally:
        left = _cluster_processes(sandbox / "tmp")
        for pid in left:          # never leak processes, even when the assertion below fails
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return nb, left, error


def _outputs(nb: nbformat.NotebookNode) -> dict[str, dict[str, str]]:
    """cell id -> {"stdout": text, "result": text/plain of the execute_result, "png": count}."""
    out = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        info = {"stdout": "", "result": None, "png": 0}
        for o in cell.outputs:
            if o.output_type == "stream" and o.name == "stdout":
                info["stdout"] += o.text
            elif o.output_type == "execute_result":
                info["result"] = o.data.get("text/plain")
            if o.output_type in ("execute_result", "display_data") and "image/png" in o.data:
                info["png"] += 1
        out[cell.id] = info
    return out


def test_task_interface_tutorial_runs_live_and_cleans_up(sandbox):
    nb, left, error = _execute("task_interface.ipynb", sandbox)
    assert error is None and left == []
    assert list((sandbox / "tmp").iterdir()) == []          # the temporary $SCHED_LAB_DIR was removed
    out = _outputs(nb)
    assert out["start"]["stdout"] == "4 engines registered\n"
    assert out["in4"]["result"] == "True"
    assert ast.literal_eval(out["in5"]["result"]) == F_MAP
    progress = next(c for c in nb.cells if c.get("id") == "progress")
    assert out["progress"]["result"] == "(True, 16)"
    assert "16/16" in "".join(o.text for o in progress.outputs if o.output_type == "stream" and o.name == "stderr")
    shown = [re.sub(r"^\[stdout:\d+\] ", "", line) for line in out["output"]["stdout"].splitlines()]
    assert shown[-1] == "datetime True" and out["output"]["result"] == "[0, 1, 4, 9]"
    assert shown[:-1] == [f"working on {i}" for i in range(4)]          # captured on the engines
    assert out["in9"]["result"] == "-9"
    lines = dict(line.split(": ") for line in out["impossible"]["stdout"].splitlines())
    assert lines.pop("myfunc") in ("NameError", "ImpossibleDependency")    # NameError when pyzmq is installed
    assert lines == {"mactask": "ImpossibleDependency", "wintask": "ImpossibleDependency",
                     "needs_missing": "ImpossibleDependency"}
    assert out["dependent"]["result"] == "49"
    assert out["graph"]["result"] == "(36, True, True)"
    assert out["graph-bad"]["stdout"] == "RemoteError ZeroDivisionError\nImpossibleDependency ImpossibleDependency\n"
    assert out["retries"]["stdout"] == "ok on a later attempt\n"
    assert out["resubmit"]["result"] == "(False, 'ok on a later attempt')"
    assert out["scheme"]["result"] == "('leastload', 1)"
    assert out["stop"]["stdout"] == "cluster stopped\n"


def test_task_interface_failing_cell_still_stops_the_cluster(sandbox):
    def break_after_start(nb):
        at = next(i for i, c in enumerate(nb.cells) if c.get("id") == "in4")
        nb.cells.insert(at, nbformat.v4.new_code_cell("raise RuntimeError('a cell fails')"))

    _, left, error = _execute("task_interface.ipynb", sandbox, edit=break_after_start)
    assert error is not None and "a cell fails" in str(error)
    assert left == []                                  # the atexit hook stopped the cluster with the kernel
    assert list((sandbox / "tmp").iterdir()) == []     # and removed the temporary lab dir


def test_compare_schemes_notebook(sandbox):
    nb, left, error = _execute("compare_schemes.ipynb", sandbox)
    assert error is None and left == []
    out = _outputs(nb)
    for scheme in ("leastload", "lru", "plainrandom", "twobin", "weighted"):
        assert scheme in out["simulate"]["result"]
    assert out["cdf"]["png"] == out["gantt"]["png"] == out["compare-plot"]["png"] == 1
    assert out["theory"]["result"] == "True"
    random_mean = float(out["theory"]["stdout"].split("plainrandom hwm=0: ")[1].split()[0])
    assert abs(random_mean - 5.0) < 1.0                       # M/M/1 at load 0.8
    table = out["compare"]["result"]
    assert all(s in table for s in ("leastload", "plainrandom", "twobin", "weighted", "mean_ci"))
    assert out["finding"]["result"] == "True" and "plainrandom / leastload" in out["finding"]["stdout"]


def test_actors_notebook(sandbox):
    nb, left, error = _execute("actors.ipynb", sandbox)
    assert error is None and left == []
    assert list((sandbox / "tmp").iterdir()) == []
    out = _outputs(nb)
    assert out["start"]["stdout"] == "4 engines registered\n"
    assert out["actor-counter"]["result"] == "[101, 102, 103, 104, 105]"        # in submission order
    assert out["actor-named"]["stdout"] == "115\n"                              # the same actor, from a 2nd client
    assert out["actor-named"]["result"] == "[('counter', 'Counter', 'alive', 1)]"
    assert out["actor-ps"]["stdout"] == "updates: 12\n" and out["actor-ps"]["result"] == "([1.0, -2.0, 3.0], True)"
    assert out["actor-kill"]["stdout"] == "ActorDiedError: True\n"
    assert out["dview"]["result"] == "(True, [0, 1, 2, 3])"
    assert out["push"]["result"] == "([[10, 1], [10, 1], [10, 1], [10, 1]], 'hello')"
    assert ast.literal_eval(out["scatter"]["result"]) == [list(range(i, i + 4)) for i in range(0, 16, 4)]
    assert ast.literal_eval(out["compute"]["result"]) == [10 * v + 1 for v in range(16)]
    assert out["apply"]["result"] == "([64, 224, 384, 544], True)"
    assert ast.literal_eval(out["map"]["result"]) == [v ** 2 for v in range(10)]
    assert "direct: [4, 4, 4, 4] load-balanced: 8" in out["both"]["stdout"] and out["both"]["result"] == "True"
    assert out["stop"]["stdout"] == "cluster stopped\n"
