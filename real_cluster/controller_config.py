"""How to run a controller: the validated options of `Controller` (controller.py), `sched-lab controller` and `Cluster`."""

from __future__ import annotations

from dataclasses import dataclass

from sched_lab.core.options import check_hwm, check_scheme
from sched_lab.core.scheme_api import load_scheme_modules


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """How to run a controller. `key` is the clients' key, `engine_key` the engines' (they must differ).

    `db_path` ":memory:" keeps the task database in memory. `redo_log` False: answers wait for the SQLite commit
    itself instead of an append to the database's redo log (redo_log.py), as before it existed.
    """

    key: str
    engine_key: str
    host: str = "127.0.0.1"
    port: int = 0
    scheme: str = "leastload"
    hwm: int = 1
    db_path: str = ":memory:"
    hb_period_s: float = 1.0
    hb_misses: int = 5
    seed: int | None = None
    journal_path: str | None = None
    redo_log: bool = True
    client_out_cap_bytes: int = 16 * 2**20          # queued to one client beyond this, its results wait in the db
    partial_frame_timeout_s: float = 30.0           # an unfinished frame that stops growing this long: closed
    incomplete_frames_cap_bytes: int = 320 * 2**20  # unfinished frames of all connections together (> one frame)
    tls_cert: str | None = None                     # with tls_key: serve TLS only (tls.py)
    tls_key: str | None = None
    scheme_modules: tuple[str, ...] = ()
    unix_path: str | None = None                    # also listen here (0600): local workers' direct links
    pull: bool = True                               # local workers take staged tasks themselves (pulling.py; Linux)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheme_modules", tuple(self.scheme_modules))
        if not self.key or not self.engine_key or self.key == self.engine_key:
            raise ValueError("the client key and the engine key must be set and differ")
        if self.client_out_cap_bytes < 1 or self.partial_frame_timeout_s <= 0 or self.incomplete_frames_cap_bytes < 1:
            raise ValueError("memory caps and the partial frame timeout must be positive")
        if self.hb_period_s <= 0 or self.hb_misses < 1:
            raise ValueError("hb_period_s must be > 0 and hb_misses >= 1")
        load_scheme_modules(self.scheme_modules)     # the same files the simulator loads, before the check
        object.__setattr__(self, "scheme", check_scheme(self.scheme))
        check_hwm(self.hwm)
