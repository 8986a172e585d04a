"""End-to-end response in the simulator (client submit to client receipt, four network hops) beside
the scheduler-side figures, and separate random streams for network latency and scheduler overhead."""

import json

import numpy as np
import pytest

from sched_lab.records.summary import Summary, summarize
from sched_lab.sim import SimConfig, Workload, parse_dist, run


def finals(result):
    df = result.dataframe()
    return df.drop_duplicates("task_id", keep="last").set_index("task_id").sort_index()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("hwm", [0, 1])
def test_constant_latency_adds_exactly_two_hops_to_every_task(seed, hwm):
    # Theory: with a constant latency L every message takes exactly L and FIFO never delays a
    # constant-latency channel further, so client submit -> scheduler (L) and scheduler -> client
    # (L) add exactly 2L to each task's scheduler-side response: mean, p50 and p99 all move by 2L.
    L = 0.05
    s = run(SimConfig(scheme="plainrandom", hwm=hwm, engines=6, tasks=3000, load=0.6, seed=seed,
                      latency=parse_dist(f"const:mean={L}"))).summary()
    assert s.response == "end_to_end" and s.measured == 2700
    assert s.mean_response - s.sched_mean_response == pytest.approx(2 * L, abs=1e-9)
    assert s.p50_response - s.sched_p50_response == pytest.approx(2 * L, abs=1e-9)
    assert s.p99_response - s.sched_p99_response == pytest.approx(2 * L, abs=1e-9)


def test_random_latency_adds_two_mean_hops_on_average():
    # Exp latency with mean 0.01 at one message per ~0.2 time units per connection: FIFO waits are
    # negligible, so e2e − sched ≈ 2 × 0.01 on average. Pooled over 5 seeds × 2,700 measured tasks
    # the standard error of that difference is ~0.6%; tolerance 4%.
    diffs = []
    for seed in range(5):
        s = run(SimConfig(engines=10, tasks=3000, load=0.5, seed=seed, latency=parse_dist("exp:mean=0.01"))).summary()
        diffs.append(s.mean_response - s.sched_mean_response)
    assert np.mean(diffs) == pytest.approx(0.02, rel=0.04)
    assert all(d > 0 for d in diffs)


def test_without_latency_or_overhead_end_to_end_equals_scheduler_side():
    s = run(SimConfig(scheme="lru", hwm=0, engines=5, tasks=2000, load=0.8, seed=3)).summary()
    assert s.response == "end_to_end"
    assert (s.mean_response, s.p50_response, s.p99_response) == (
        s.sched_mean_response, s.sched_p50_response, s.sched_p99_response)


def test_received_at_is_deliver_time_plus_one_hop_per_task():
    wl = Workload(np.arange(0.0, 50.0, 5.0), np.ones(10))
    res = run(SimConfig(engines=2, warmup=0.0, latency=parse_dist("const:mean=0.1")), wl)
    fin = finals(res)
    # the scheduler saw the finish report at finished_at; the client gets it one hop later
    assert res.received_at == pytest.approx(fin["finished_at"].to_numpy(float) + 0.1)
    assert res.received_at - wl.submit_at == pytest.approx(np.full(10, 1.4))       # 4 hops + 1 of work
    assert res.summary().mean_response == pytest.approx(1.4)
    assert res.summary().sched_mean_response == pytest.approx(1.2)


def _sequential():
    # One engine, tasks 100 apart: every run sends the same messages in the same order (submit,
    # dispatch, finish report, result to client), so the i-th draw of a stream lands on the same hop.
    # 3,000 tasks: more than one 8,192-value block of latency draws (4 per task), so a shared stream
    # would interleave the two sources' blocks.
    rng = np.random.default_rng(7)
    return Workload(np.arange(0.0, 30_000.0, 10.0), rng.exponential(1.0, 3000))


def test_adding_overhead_leaves_the_latency_draws_alone():
    wl = _sequential()
    lat = parse_dist("exp:mean=0.05")
    alone = finals(run(SimConfig(engines=1, seed=5, warmup=0.0, latency=lat), wl))
    both = finals(run(SimConfig(engines=1, seed=5, warmup=0.0, latency=lat, overhead=parse_dist("exp:mean=0.01")), wl))
    hop = lambda f: (f["started_at"] - f["dispatched_at"]).to_numpy(float)  # noqa: E731  (dispatch hop, idle engine)
    assert hop(alone) == pytest.approx(hop(both), abs=1e-12)
    assert hop(alone).std() > 0.01                                           # really random draws
    submit_hop = lambda f: f["submitted_at"].to_numpy(float) - wl.submit_at  # noqa: E731
    assert np.all(submit_hop(both) > submit_hop(alone))                       # the overhead did apply


def test_adding_latency_leaves_the_overhead_draws_alone():
    # Each submission reaches the scheduler after its hop (latency stream) and is handled after its
    # overhead draw: with both, submitted_at − submit = hop + overhead, each equal to its run alone.
    wl = _sequential()
    ovh, lat = parse_dist("exp:mean=0.01"), parse_dist("exp:mean=0.05")
    delay = lambda cfg: finals(run(cfg, wl))["submitted_at"].to_numpy(float) - wl.submit_at  # noqa: E731
    o_alone = delay(SimConfig(engines=1, seed=5, warmup=0.0, overhead=ovh))
    hop_alone = delay(SimConfig(engines=1, seed=5, warmup=0.0, latency=lat))
    both = delay(SimConfig(engines=1, seed=5, warmup=0.0, overhead=ovh, latency=lat))
    assert both - hop_alone == pytest.approx(o_alone, abs=1e-9)
    assert o_alone.std() > 0.002


def test_summarize_rejects_client_times_that_do_not_fit():
    res = run(SimConfig(engines=2, tasks=50, load=0.5, seed=1))
    with pytest.raises(ValueError, match="receipt"):
        summarize(res.records, client_times=(res.workload.submit_at, np.full(50, np.nan)))
    with pytest.raises(ValueError, match="task ids 0..9"):
        summarize(res.records, client_times=(np.zeros(10), np.zeros(10)))
    with pytest.raises(ValueError, match="response must be"):
        Summary(0, 0, 0, *[float("nan")] * 8, response="client")
    assert summarize(res.records).response == "scheduler"


def test_simulate_json_says_end_to_end(capsys):
    from sched_lab.apps.cli import main

    rc = main(["simulate", "--tasks", "1000", "--engines", "4", "--latency", "const:mean=0.02", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["response"] == "end_to_end"
    assert data["mean_response"] - data["sched_mean_response"] == pytest.approx(0.04, abs=1e-9)
    assert {"sched_p50_response", "sched_p99_response"} <= set(data)


def test_a_client_next_to_the_scheduler_pays_no_hop():
    wl = Workload(np.arange(0.0, 50.0, 5.0), np.ones(10))
    res = run(SimConfig(engines=2, warmup=0.0, latency=parse_dist("const:mean=0.1"), client_latency=False), wl)
    fin = finals(res)
    assert fin["submitted_at"].to_numpy(float) == pytest.approx(wl.submit_at)       # no client->controller hop
    assert res.received_at == pytest.approx(fin["finished_at"].to_numpy(float))     # no controller->client hop
    s = res.summary()
    assert s.mean_response == pytest.approx(1.2) and s.sched_mean_response == pytest.approx(1.2)
    both = run(SimConfig(engines=2, warmup=0.0, latency=parse_dist("const:mean=0.1"),
                         overhead=parse_dist("const:mean=0.01"), client_latency=False), wl)
    assert finals(both)["submitted_at"].to_numpy(float) == pytest.approx(wl.submit_at + 0.01)
