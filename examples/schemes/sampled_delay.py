"""A user scheme in its own file: speed-aware power of d choices, with label affinity.

Run it in the simulator and on a live cluster with no edit to sched-lab:

    sched-lab simulate --scheme-module examples/schemes/sampled_delay.py --scheme sampleddelay:d=3 \
        --speeds 1x50,4x50 --hwm 0 --load 0.9
    sched-lab cluster start -n 4 --scheme-module examples/schemes/sampled_delay.py --scheme sampleddelay

The law: draw `d` candidates uniformly (with replacement) and take the one with the lowest expected
delay (load + 1) / speed, the earliest draw on a tie. With `affinity` on, a task whose label is one
of some candidates' labels draws only among those (engines advertise labels with `--label`).
Check it the way the built-ins are checked:

    python -c "import sched_lab, runpy; runpy.run_path('examples/schemes/sampled_delay.py'); \
        from sched_lab.testing import check_scheme; print(check_scheme('sampleddelay:d=3'))"
"""

from __future__ import annotations

from sched_lab import Choice, register_scheme


def sampled_delay(choice: Choice, d: int = 2, affinity: bool = True) -> object:
    """Speed-aware power of d: d uniform draws, the lowest (load + 1) / speed; label affinity first."""
    if d < 1:
        raise ValueError(f"sampleddelay needs d >= 1, got {d}")
    pool = range(len(choice.candidates))
    label = getattr(choice.task, "label", None)
    if affinity and label is not None:
        matching = [i for i in pool if label in choice.labels[i]]
        if matching:
            pool = matching
    pool = list(pool)
    best = None
    for _ in range(d):
        i = pool[choice.rng.randrange(len(pool))]
        if best is None or (choice.loads[i] + 1) / choice.speeds[i] < (choice.loads[best] + 1) / choice.speeds[best]:
            best = i
    return choice.candidates[best]


register_scheme("sampleddelay", sampled_delay, params={"d": 2, "affinity": True},
                summary="speed-aware power of d: the lowest (load+1)/speed of d draws; label affinity first")
