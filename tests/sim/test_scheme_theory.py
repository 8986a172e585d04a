"""The new built-in schemes in the simulator, against theory, over several seeds (issue 13 item 5).

- JSQ(3) = `powerofd:d=3`, hwm=0, n=1000, λ=0.9: Mitzenmacher's supermarket model
  T_3 = Σ_i λ^((3^i−3)/2) = 2.0279 (reference/queueing-anchors.md §1.3), mean over 3 seeds within 3%
  (the finite-n excess at n=1000 is ≈ +0.3%, the warm-up-from-empty bias ≈ −1%); and clearly below T_2.
- `jiq`, hwm=0, n=1000, λ=0.9: with one dispatcher that knows every idle engine (JIQ with a single
  I-queue, Lu et al., Perf. Eval. 68(11), 2011; the PULL algorithm of Stolyar, Queueing Syst. 80(4),
  2015, proved asymptotically optimal for λ<1) the probability that a task waits vanishes as n→∞:
  the fraction of tasks that find an idle engine → 1 and the mean response → 1 (the task length).
  Checked: found-idle ≥ 0.995 and mean response within 2% of 1, over 3 seeds; plainrandom on the
  same workload rarely finds an idle engine (1−λ = 0.1 in steady state; ≈0.12 after 200 tasks per
  engine) and waits long (the check has power).
- `fastest` on engines of speeds 1x5,4x5 at hwm=1, ρ=0.5: leastload (speed-blind, least recently used
  idle engine) is ≈48% slower in mean response (paired over 4 seeds: between 35% and 60%).
- A scheme from a user's file runs in the simulator (also through a sweep worker process), and a
  scheme that fails some tasks fails only those (SchemeError) while the run completes.
"""

from __future__ import annotations

import numpy as np
import pytest

from sched_lab.core.scheme_api import SCHEMES
from sched_lab.sim import SimConfig, run
from sched_lab.theory import supermarket_response

SEEDS = (31, 32, 33)


def test_jsq3_matches_the_supermarket_model_at_n1000() -> None:
    got = np.mean([run(SimConfig(scheme="powerofd:d=3", hwm=0, engines=1000, tasks=200_000, load=0.9, seed=s,
                                 warmup=0.1)).summary().mean_response for s in SEEDS])
    assert supermarket_response(0.9, 3) == pytest.approx(2.0279, abs=1e-4)
    assert got == pytest.approx(supermarket_response(0.9, 3), rel=0.03)
    assert got < 0.9 * supermarket_response(0.9, 2)          # d=3 really is not d=2 (T_2 = 2.6141)


def _found_idle_and_mean(scheme: str, seed: int) -> tuple[float, float]:
    result = run(SimConfig(scheme=scheme, hwm=0, engines=1000, tasks=200_000, load=0.9, seed=seed, warmup=0.1))
    df = result.dataframe()
    df = df[df["submitted_at"] >= df["submitted_at"].quantile(0.1)]
    return float((df["engine_load"] == 0).mean()), result.summary().mean_response


def test_jiq_has_vanishing_waiting_at_n1000() -> None:
    runs = [_found_idle_and_mean("jiq", s) for s in SEEDS]
    found_idle = np.mean([r[0] for r in runs])
    mean = np.mean([r[1] for r in runs])
    assert found_idle >= 0.995, runs
    assert mean == pytest.approx(1.0, rel=0.02), runs
    idle_random, mean_random = _found_idle_and_mean("plainrandom", SEEDS[0])
    assert idle_random < 0.3 and mean_random > 3     # M/M/1 per engine: 1-λ = 0.1 and T = 10 in steady state


def test_fastest_beats_speed_blind_leastload_on_heterogeneous_engines() -> None:
    speeds = (1.0,) * 5 + (4.0,) * 5
    ratios = []
    for seed in range(4):
        means = {s: run(SimConfig(scheme=s, hwm=1, speeds=speeds, tasks=20_000, load=0.5, seed=seed,
                                  warmup=0.1)).summary().mean_response for s in ("leastload", "fastest")}
        ratios.append(means["leastload"] / means["fastest"])
    assert 1.35 < np.mean(ratios) < 1.60, ratios
    # on identical engines fastest is leastload: the same decisions, the same records
    same = [run(SimConfig(scheme=s, hwm=0, engines=8, tasks=3_000, load=0.8, seed=5)).summary().mean_response
            for s in ("leastload", "fastest")]
    assert same[0] == same[1]


@pytest.fixture
def scheme_file(tmp_path):
    path = tmp_path / "my_schemes.py"
    path.write_text(
        "from sched_lab import register_scheme\n"
        "def slowest_first(choice):\n"
        "    return choice.candidates[min(range(len(choice.candidates)), key=lambda i: (choice.speeds[i], i))]\n"
        "register_scheme('slowestfirst', slowest_first)\n"
        "def broken(choice, every=3):\n"
        "    if choice.rng.randrange(every) == 0:\n"
        "        return 'not-an-engine'\n"
        "    return choice.candidates[0]\n"
        "register_scheme('brokenlaw', broken, params={'every': 3})\n")
    yield str(path)
    SCHEMES.pop("slowestfirst", None)
    SCHEMES.pop("brokenlaw", None)


def test_a_scheme_from_a_users_file_runs_in_the_simulator_and_in_sweep_workers(scheme_file) -> None:
    from sched_lab.apps.sweep import run_sweep

    speeds = (1.0, 1.0, 4.0, 4.0)
    cfg = SimConfig(scheme="slowestfirst", scheme_modules=(scheme_file,), speeds=speeds, hwm=1, tasks=2_000,
                    load=0.05, seed=2)
    df = run(cfg).dataframe()
    busy = df.groupby("engine_id").size()
    assert busy.loc[[0, 1]].sum() > 3 * busy.loc[[2, 3]].sum()  # at low load the slow engines get most tasks
    fast = SimConfig(scheme="fastest", speeds=speeds, hwm=1, tasks=2_000, load=0.05, seed=2)
    rows = run_sweep([cfg, fast], jobs=2)
    assert list(rows["scheme"]) == ["slowestfirst", "fastest"]
    assert rows["mean_response"].iloc[0] > rows["mean_response"].iloc[1]


def test_a_failing_law_fails_only_its_tasks_and_the_run_completes(scheme_file) -> None:
    result = run(SimConfig(scheme="brokenlaw:every=4", scheme_modules=(scheme_file,), engines=4, hwm=1,
                           tasks=2_000, load=0.5, seed=3))
    df = result.dataframe()
    failed = df[df["error_name"] == "SchemeError"]
    assert len(df["task_id"].unique()) == 2_000                  # every task has a final record
    assert 0.15 < len(failed) / 2_000 < 0.35                     # about a quarter of the decisions stray
    assert (df[df["error_name"].isna()]["outcome"] == "ok").all()
    assert set(failed["outcome"]) == {"scheme_error"} and failed["engine_id"].isna().all()
