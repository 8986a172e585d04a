"""`sched-lab simulate --actors N --actor-calls RATE ...`: the per-kind JSON keys, the actor options
reaching the run (restarts under --worker-mtbf), and exit code 2 with a clear message for bad values."""

import json

import pytest

from sched_lab.apps.cli import main


def simulate(capsys, *argv):
    rc = main(["simulate", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_actor_keys_and_values(capsys):
    rc, out, _ = simulate(capsys, "--engines", "4", "--hwm", "2", "--tasks", "2000", "--load", "0.4", "--actors", "3",
                          "--actor-calls", "0.3", "--json")
    assert rc == 0
    data = json.loads(out)
    assert data["actor_call_n"] > 500 and data["task_n"] == pytest.approx(0.9 * 2000, abs=300)
    assert data["actor_call_failed"] == 0 and data["actor_restarts"] == 0 and data["actors_per_engine_max"] == 1
    assert data["actor_call_mean"] > 1.0 and data["task_mean"] > 1.0


def test_worker_crashes_restart_actors(capsys):
    rc, out, _ = simulate(capsys, "--engines", "4", "--hwm", "2", "--tasks", "2000", "--load", "0.3", "--actors", "2",
                          "--actor-calls", "0.3", "--worker-mtbf", "100", "--worker-restart", "0.2",
                          "--actor-max-restarts", "1000", "--actor-max-task-retries", "1000", "--retries", "100",
                          "--json")
    data = json.loads(out)
    assert rc == 0 and data["actor_restarts"] > 0 and data["actor_call_failed"] == 0


@pytest.mark.parametrize("argv, words", [(("--actors", "-2"), "actors"), (("--actor-calls", "-1"), "actor_call_rate"),
                                         (("--actor-max-concurrency", "0"), "actor_max_concurrency"),
                                         (("--worker-mtbf", "0"), "worker_mtbf"),
                                         (("--actors", "1", "--actor-call-length", "nope"), "distribution")])
def test_bad_actor_options_exit_2(capsys, argv, words):
    rc, _, err = simulate(capsys, "--tasks", "100", *argv)
    assert rc == 2 and words in err
