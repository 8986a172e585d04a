"""Overhead models fitted from a measured trace: iid draws lose bursts, replay and the time-modulated
model keep them (where they happen, how large, how correlated), deterministically under a seed."""

import numpy as np
import pytest

from sched_lab.sim.overheads import OVERHEAD_MODELS, OverheadTrace


def bursty(seed: int, n: int = 4000, rate: float = 200.0) -> OverheadTrace:
    """A two-state (quiet 0.2 ms / burst 8 ms) Markov-modulated trace: bursts last ~0.5 s, every ~3 s."""
    rng = np.random.default_rng(seed)
    at = np.cumsum(rng.exponential(1 / rate, n))
    state, t_next, vals = 0, rng.exponential(2.5), np.empty(n)
    for i, t in enumerate(at):
        while t >= t_next:
            state = 1 - state
            t_next += rng.exponential(0.5 if state else 2.5)
        vals[i] = rng.exponential(0.008 if state else 0.0002)
    return OverheadTrace(at, vals)


def lag1(x: np.ndarray) -> float:
    return float(np.corrcoef(x[:-1], x[1:])[0, 1])


def test_replay_gives_each_measured_time_its_own_value():
    tr = bursty(1)
    assert tr.sample("replay", tr.at_s, np.random.default_rng(0)) == pytest.approx(tr.overhead_s, abs=0)
    # between two measurements: the nearer one
    mid = tr.at_s[10] + 0.1 * (tr.at_s[11] - tr.at_s[10])
    assert tr.sample("replay", np.array([mid]), np.random.default_rng(0))[0] == tr.overhead_s[10]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_modulated_keeps_the_bursts_iid_does_not(seed):
    tr = bursty(seed)
    rng = np.random.default_rng(100 + seed)
    iid, mod = tr.sample("iid", tr.at_s, rng), tr.sample("modulated", tr.at_s, rng, window_s=0.1)
    true_r = lag1(tr.overhead_s)
    assert true_r > 0.3                                   # the trace really is bursty
    assert abs(lag1(iid)) < 0.06                          # iid: ~0 ± 2/sqrt(4000) · 2
    assert lag1(mod) > 0.6 * true_r                       # modulated: most of the correlation kept
    # same marginal distribution (means within 15%: heavy bursts make the mean noisy)
    assert mod.mean() == pytest.approx(tr.overhead_s.mean(), rel=0.15)
    assert iid.mean() == pytest.approx(tr.overhead_s.mean(), rel=0.15)
    # inside the busiest second, modulated is as slow as the trace was; iid is the global average
    k = int(np.argmax(np.convolve(tr.overhead_s, np.ones(200), "same")))
    sl = slice(max(0, k - 100), k + 100)
    burst = tr.overhead_s[sl].mean()
    assert burst > 2 * tr.overhead_s.mean()
    assert mod[sl].mean() > 0.6 * burst and iid[sl].mean() < 0.5 * burst


def test_modulated_draws_only_from_the_window():
    tr = OverheadTrace(np.array([0.0, 1.0, 1.05, 1.1, 5.0]), np.array([9.0, 1.0, 2.0, 3.0, 7.0]))
    vals = tr.sample("modulated", np.full(2000, 1.05), np.random.default_rng(3), window_s=0.2)
    assert set(vals) == {1.0, 2.0, 3.0}
    assert np.bincount(vals.astype(int))[1:4] / 2000 == pytest.approx([1 / 3] * 3, abs=0.05)
    # no measurement within the window: the nearest one
    assert tr.sample("modulated", np.array([4.0, -3.0]), np.random.default_rng(3), window_s=0.2).tolist() == [7.0, 9.0]


def test_same_seed_same_draws_and_models_checked():
    tr = bursty(5, n=500)
    for model in OVERHEAD_MODELS:
        a = tr.sample(model, tr.at_s, np.random.default_rng(9))
        b = tr.sample(model, tr.at_s, np.random.default_rng(9))
        assert (a == b).all() and (a >= 0).all()
    with pytest.raises(ValueError, match="unknown overhead model 'gauss'; allowed: iid, replay, modulated"):
        tr.sample("gauss", tr.at_s, np.random.default_rng(0))
    with pytest.raises(ValueError, match="window_s"):
        tr.sample("modulated", tr.at_s, np.random.default_rng(0), window_s=0)


@pytest.mark.parametrize("at, ovh, message", [
    ([], [], "at least one"), ([0.0, 1.0], [0.1], "one length"), ([0.0], [-1.0], ">= 0"),
    ([np.nan], [0.1], "finite"),
])
def test_bad_traces_are_rejected(at, ovh, message):
    with pytest.raises(ValueError, match=message):
        OverheadTrace(np.array(at), np.array(ovh))


def test_unsorted_measurements_are_sorted_with_their_values():
    tr = OverheadTrace(np.array([2.0, 0.0, 1.0]), np.array([20.0, 0.0, 10.0]))
    assert tr.at_s.tolist() == [0.0, 1.0, 2.0] and tr.overhead_s.tolist() == [0.0, 10.0, 20.0]


@pytest.mark.parametrize("model", ["replay", "modulated"])
def test_scalar_draws_match_the_vector_ones(model):
    tr = bursty(6, n=800)
    t = np.random.default_rng(1).uniform(-1, tr.at_s[-1] + 1, 500)
    u = np.random.default_rng(2).random(500)

    class Fixed:                                   # a Generator stand-in replaying the same uniforms
        def random(self, n):
            return u[:n]

    vec = tr.sample(model, t, Fixed(), window_s=0.05)
    assert [tr.draw_at(ti, ui, model, 0.05) for ti, ui in zip(t, u)] == vec.tolist()


def test_simulator_hops_take_the_latency_of_their_time():
    from sched_lab.sim import SimConfig, Workload, run

    wl = Workload(np.arange(0.0, 50.0, 5.0), np.ones(10))
    tr = OverheadTrace(np.array([0.0, 24.0, 26.0]), np.array([0.1, 0.5, 0.5]))
    df = run(SimConfig(engines=2, warmup=0.0, latency_trace=tr, latency_model="replay"), wl).dataframe()
    # before t≈12 every hop is nearest the 0.1 measurement (submit, dispatch, report: 1 + 2 × 0.1 on
    # the scheduler's clock), after it nearest the 0.5 ones (1 + 2 × 0.5)
    assert (df["finished_at"] - df["submitted_at"]).to_numpy() == pytest.approx([1.2] * 3 + [2.0] * 7)
    mod = run(SimConfig(engines=2, warmup=0.0, latency_trace=tr, latency_window_s=1.5), wl).dataframe()
    assert (mod["finished_at"] - mod["submitted_at"]).to_numpy() == pytest.approx([1.2] * 3 + [2.0] * 7)


@pytest.mark.parametrize("kw, message", [
    ({"latency_trace": "x"}, "OverheadTrace"), ({"latency_model": "gauss"}, "one of iid, replay, modulated"),
    ({"pickup_trace": 0.001}, "pickup_trace must be a sim.overheads.OverheadTrace"),
    ({"latency_window_s": 0.0}, "latency_window_s"),
])
def test_latency_trace_config_is_validated(kw, message):
    from sched_lab.sim import SimConfig

    with pytest.raises(ValueError, match=message):
        SimConfig(**kw)


def test_latency_and_latency_trace_exclude_each_other():
    from sched_lab.sim import SimConfig, parse_dist

    with pytest.raises(ValueError, match="not both"):
        SimConfig(latency=parse_dist("const:mean=0.1"), latency_trace=OverheadTrace(np.zeros(1), np.zeros(1)))


def test_scalar_iid_draws_are_uniform_over_the_measurements():
    tr = OverheadTrace(np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    u = np.random.default_rng(4).random(4000)
    vals = np.array([tr.draw_at(100.0, ui, "iid") for ui in u])        # whatever the time
    assert np.bincount(vals.astype(int))[1:] / 4000 == pytest.approx([0.25] * 4, abs=0.03)
    with pytest.raises(ValueError, match="unknown overhead model 'gauss'"):
        tr.draw_at(0.0, 0.5, "gauss")


def test_a_queued_task_starts_the_pickup_delay_after_the_previous_one_ends():
    from sched_lab.sim import SimConfig, Workload, run

    # one engine, hwm 0: five unit tasks at t=0 queue behind each other; the pickup is 0.25 before
    # t=2.5 and 0.5 after it (replay: the value measured nearest to when the previous task ends)
    tr = OverheadTrace(np.array([0.0, 2.0, 3.0, 100.0]), np.array([0.25, 0.25, 0.5, 0.5]))
    df = run(SimConfig(engines=1, hwm=0, warmup=0.0, pickup_trace=tr, latency_model="replay"),
             Workload(np.zeros(5), np.ones(5))).dataframe().sort_values("task_id")
    # ends at 1, 2.25, 3.5 (nearest 3.0: 0.5 from here on), 5, 6.5
    assert df["started_at"].to_numpy() == pytest.approx([0.0, 1.25, 2.5, 4.0, 5.5])
    assert df["finished_at"].to_numpy() == pytest.approx([1.0, 2.25, 3.5, 5.0, 6.5])
    # a task that finds its engine idle starts at once: no pickup without a queue
    spaced = run(SimConfig(engines=1, hwm=0, warmup=0.0, pickup_trace=tr, latency_model="replay"),
                 Workload(np.arange(5) * 2.0, np.ones(5))).dataframe().sort_values("task_id")
    assert (spaced["started_at"] - spaced["submitted_at"]).to_numpy() == pytest.approx([0.0] * 5)


def test_a_pickup_trace_keeps_the_run_off_the_fast_path():
    from sched_lab.sim import SimConfig, Workload
    from sched_lab.sim.fastpath import is_plain

    wl = Workload(np.zeros(3), np.ones(3))
    assert is_plain(SimConfig(engines=1, hwm=0), wl)
    assert not is_plain(SimConfig(engines=1, hwm=0, pickup_trace=OverheadTrace(np.zeros(1), np.ones(1))), wl)


def test_a_task_dispatched_during_the_pickup_waits_for_the_queued_one():
    from sched_lab.sim import SimConfig, Workload, run

    tr = OverheadTrace(np.array([0.0]), np.array([0.5]))
    # task 1 queues behind task 0; task 2 arrives at 1.2, while the engine hands over task 1 (1.0-1.5)
    df = run(SimConfig(engines=1, hwm=0, warmup=0.0, pickup_trace=tr, latency_model="replay"),
             Workload(np.array([0.0, 0.1, 1.2]), np.ones(3))).dataframe().sort_values("task_id")
    assert df["started_at"].to_numpy() == pytest.approx([0.0, 1.5, 3.0])


def test_pickup_draws_have_their_own_stream():
    """Adding a pickup trace leaves the network's draws (and so every hop) as they were."""
    from sched_lab.sim import SimConfig, Workload, parse_dist, run

    wl = Workload(np.arange(0.0, 40.0, 2.0), np.full(20, 1.5))
    net = {"engines": 3, "hwm": 0, "warmup": 0.0, "latency": parse_dist("exp:mean=0.05")}
    a = run(SimConfig(**net), wl).dataframe().sort_values("task_id")
    b = run(SimConfig(**net, pickup_trace=OverheadTrace(np.zeros(1), np.zeros(1)), latency_model="iid"),
            wl).dataframe().sort_values("task_id")
    assert b["finished_at"].to_numpy() == pytest.approx(a["finished_at"].to_numpy(), abs=1e-12)
