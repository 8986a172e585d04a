"""Columnar records (the simulator's RecordSink) against the core's TaskRecord, analysis summaries
(warm-up cut, response/wait definitions) on both record forms, and the plot functions."""

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from sched_lab.records.summary import summarize, to_dataframe
from sched_lab.core import Outcome, RecordList, TaskRecord
from sched_lab.apps.plots import response_cdf, response_vs_load
from sched_lab.records import confidence_halfwidth
from sched_lab.sim import ColumnarRecords, SimConfig, run

ROWS = [
    (0, 0, 1, 0.0, 0.0, 0.5, 2.0, Outcome.OK, None, 0, 0, "lru", None),
    (1, 0, 2, 1.0, 1.0, None, 3.0, Outcome.ENGINE_LOST, "EngineError", 2, 1, "lru", "x"),
    (1, 1, 0, 1.0, 3.0, 3.0, 7.0, Outcome.OK, None, 0, 0, "lru", "x"),
    (2, 0, None, 2.0, None, None, 4.0, Outcome.TIMEOUT, "TaskTimeout", None, None, "lru", None),
    (3, 0, 0, 8.0, 8.0, 9.0, 10.0, Outcome.OK, None, 0, 0, "lru", None),
]


def both():
    col, lst = ColumnarRecords(), RecordList()
    for r in ROWS:
        col.add(*r)
        lst.add(*r)
    return col, lst


def test_columnar_frame_equals_taskrecord_frame():
    col, lst = both()
    a = col.to_dataframe()
    b = to_dataframe(lst)
    assert list(a.columns) == list(TaskRecord.fields()) == list(b.columns)
    assert len(a) == len(col) == 5
    for name in TaskRecord.fields():
        x = a[name].astype(object).where(a[name].notna(), None).tolist()
        y = b[name].astype(object).where(b[name].notna(), None).tolist()
        assert x == y, name
    assert a["engine_id"].dtype == "Int64" and a["outcome"].dtype == "category"


def test_flush_in_between_keeps_order_and_codes():
    col = ColumnarRecords()
    col.add(*ROWS[0])
    col.flush()
    for r in ROWS[1:]:
        col.add(*r)
    assert col.to_dataframe()["error_name"].astype(object).tolist()[:4] == [np.nan, "EngineError", np.nan, "TaskTimeout"]


def test_summary_definitions_and_same_on_both_forms():
    col, lst = both()
    s1, s2 = summarize(col, engines=3), summarize(lst, engines=3)
    assert s1.response == s2.response == "scheduler"             # no client times: the scheduler's view
    assert s1.sched_mean_response == s1.mean_response
    for k, v in s1.as_dict().items():
        w = s2.as_dict()[k]
        if k == "response":
            continue
        assert (math.isnan(v) and math.isnan(w)) or v == pytest.approx(w), k
    assert (s1.measured, s1.ok, s1.failed) == (4, 3, 1)
    assert s1.mean_response == pytest.approx((2 + 6 + 2) / 3)       # final attempts, ok tasks
    assert s1.mean_wait == pytest.approx((0.5 + 2 + 1) / 3)          # start of the final attempt
    assert s1.makespan == 10.0 and s1.throughput == pytest.approx(0.3)
    assert s1.utilization == pytest.approx((1.5 + 4 + 1) / 30)
    assert s1.imbalance == pytest.approx(5 / (6.5 / 3))


def test_warmup_cut_drops_the_earliest_submissions():
    col, _ = both()
    s = summarize(col, engines=3, warmup=0.5)
    assert s.measured == 2 and s.mean_response == pytest.approx(2.0)   # tasks 2 (timeout) and 3
    with pytest.raises(ValueError):
        summarize(col, warmup=1.0)


def test_empty_records():
    s = summarize(ColumnarRecords(), engines=2)
    assert s.measured == 0 and math.isnan(s.mean_response)


def test_simulation_summary_is_sane():
    res = run(SimConfig(engines=20, tasks=20_000, load=0.7, seed=9, hwm=1))
    s = res.summary()
    assert s.measured == 18_000 and s.failed == 0
    assert s.utilization == pytest.approx(0.7, rel=0.05)
    assert s.throughput == pytest.approx(0.7 * 20, rel=0.05)
    assert s.p50_response < s.mean_response < s.p99_response
    assert s.mean_response - s.mean_wait == pytest.approx(1.0, rel=0.05)


def test_plots_return_figures():
    tidy = pd.DataFrame([{"scheme": s, "load": l, "seed": k, "mean_response": 1 + l * (k + 1) * (s == "a"),
                          "p99_response": 5 + l} for s in "ab" for l in (0.5, 0.9) for k in range(3)])
    fig = response_vs_load(tidy, theory={"M/M/1": [(0.5, 2.0), (0.9, 10.0)]}, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 3 and len(fig.axes[0].collections) == 2   # 2 schemes + theory; 2 bands
    col, _ = both()
    assert isinstance(response_cdf({"x": col}), Figure)
    with pytest.raises(ValueError, match="needs columns"):
        response_vs_load(tidy.drop(columns="load"))


def test_confidence_halfwidth():
    assert confidence_halfwidth([1.0]) == 0.0
    assert confidence_halfwidth([1.0, 3.0]) == pytest.approx(12.706 * math.sqrt(2) / math.sqrt(2))
