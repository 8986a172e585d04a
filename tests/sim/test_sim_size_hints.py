"""Size hints in the simulator (issue 13): `SimConfig(size_hints=...)` / `sched-lab simulate --size-hints
exact|noisy:SIGMA` give each task a hint that schemes see as `choice.task.size_hint`: exactly its work, or
its work times a mean-1 log-normal factor; drawn from their own stream (the workload and the other draws are
unchanged); a size-aware scheme (short tasks to one engine, long ones to the other) runs from the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sched_lab import SCHEMES, register_scheme
from sched_lab.apps.cli import main
from sched_lab.sim.config import SimConfig
from sched_lab.sim.runner import run

SEEN: dict[int, float | None] = {}


def _recording_law(choice):
    SEEN[choice.task.task_id] = choice.task.size_hint
    return choice.candidates[0]


@pytest.fixture
def recorder():
    register_scheme("hintseen", _recording_law, summary="records size hints")
    SEEN.clear()
    yield SEEN
    SCHEMES.pop("hintseen", None)


def _run(hints, seed=4, tasks=4000):
    return run(SimConfig(scheme="hintseen", hwm=0, engines=4, tasks=tasks, load=0.5, length=_lognormal(),
                         seed=seed, size_hints=hints))


def _lognormal():
    from sched_lab.sim.distributions import parse_dist
    return parse_dist("lognormal:sigma=1")


def test_exact_hints_are_the_work_and_none_without(recorder):
    res = _run("exact")
    work = res.workload.work
    assert len(recorder) == len(work) and all(recorder[i] == pytest.approx(work[i], rel=1e-12) for i in recorder)
    recorder.clear()
    plain = _run(None)
    assert set(recorder.values()) == {None}
    assert np.array_equal(plain.workload.work, work) and np.array_equal(plain.workload.submit_at,
                                                                        res.workload.submit_at)


def test_noisy_hints_are_unbiased_with_the_stated_spread(recorder):
    sigma = 0.5
    ratios = []
    for seed in range(3):
        recorder.clear()
        res = _run(f"noisy:{sigma}", seed=seed, tasks=6000)
        work = res.workload.work
        ratios += [recorder[i] / work[i] for i in recorder if work[i] > 0]
    logs = np.log(ratios)
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.03)              # mean-1 factor (se ~0.004)
    assert np.std(logs) == pytest.approx(sigma, rel=0.05)               # log-sd sigma (se ~0.5%)
    assert not np.allclose(ratios, 1.0)


@pytest.mark.parametrize("bad", ["noisy", "noisy:-1", "noisy:x", "exactly", "exact:1"])
def test_bad_hint_specs_are_refused(bad):
    with pytest.raises(ValueError, match="exact or noisy:SIGMA"):
        SimConfig(size_hints=bad)


_SITA = '''
from sched_lab import register_scheme

def law(choice, cut=1.0):
    if choice.task.size_hint is None:
        raise ValueError("this scheme needs size hints")
    ranked = sorted(choice.candidates, key=str)
    want = ranked[0] if choice.task.size_hint < cut else ranked[-1]
    return want if want in choice.candidates else choice.candidates[0]

register_scheme("sita", law, params={"cut": 1.0}, summary="short tasks to the first engine, long to the last")
'''


def test_a_size_aware_scheme_runs_from_the_cli(tmp_path, capsys):
    module = tmp_path / "sita.py"
    module.write_text(_SITA)
    common = ["simulate", "--scheme-module", str(module), "--scheme", "sita:cut=1", "--engines", "2", "--hwm", "0",
              "--tasks", "3000", "--load", "0.5", "--json"]
    try:
        assert main([*common, "--size-hints", "exact"]) == 0
        exact = json.loads(capsys.readouterr().out)
        assert main([*common, "--size-hints", "noisy:1"]) == 0
        noisy = json.loads(capsys.readouterr().out)
        assert main(common) == 1                                         # a failed run: exit 1
        blind = json.loads(capsys.readouterr().out)
        assert main([*common, "--size-hints", "sometimes"]) == 2
        assert "exact or noisy:SIGMA" in capsys.readouterr().err
    finally:
        SCHEMES.pop("sita", None)
    assert exact["failed"] == 0 and noisy["failed"] == 0
    assert blind["ok"] == 0 and blind["failed"] == blind["measured"]      # no hints: the law refuses every task
