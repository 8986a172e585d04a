"""Profile directories and connection files.

`$SCHED_LAB_DIR` (default `~/.sched-lab`) holds one `profile_<name>/` per profile:

    security/controller-client.json   how clients reach the controller (mode 0600: holds the key)
    security/controller-engine.json   how engines reach it (its own key: engines only; copy it to join from elsewhere)
    log/                              controller.log, engine-*.log, cluster.log
    pid/cluster.json                  pids of a cluster started by `sched-lab cluster start` / `Cluster`, each
                                      with its start time and command line (a pid is trusted only if both match)
    pid/controller.lock               held (fcntl) by the profile's one running controller for its lifetime
    tasks.db                          the SQLite task database (with tasks.db-wal, tasks.db-shm)

Everything is private to its user: directories 0700, files 0600 (the database holds pickled payloads).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CLIENT_FILE = "controller-client.json"
ENGINE_FILE = "controller-engine.json"
DEFAULT_PROFILE = "default"


def sched_lab_dir() -> Path:
    """The root of all profiles: `$SCHED_LAB_DIR`, or `~/.sched-lab`."""
    return Path(os.environ.get("SCHED_LAB_DIR") or "~/.sched-lab").expanduser()


def profile_dir(profile: str | None = None, create: bool = True) -> Path:
    """`<root>/profile_<name>/`, with its security, log and pid folders made when `create`."""
    name = profile or DEFAULT_PROFILE
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid profile name {name!r}")
    path = sched_lab_dir() / f"profile_{name}"
    if create:
        for sub in ("security", "log", "pid"):
            (path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        make_private(path)
    return path


PRIVATE_FILES = ("tasks.db", "tasks.db-wal", "tasks.db-shm", "tasks.db-journal")


def make_private(path: Path) -> None:
    """Mode 0700 for `path` and every directory in it; 0600 for its database files and logs (ours only)."""
    uid = os.getuid()
    for dirpath, dirnames, filenames in os.walk(path):
        d = Path(dirpath)
        if d.stat().st_uid == uid:
            os.chmod(d, 0o700)
        for name in filenames:
            f = d / name
            if (name in PRIVATE_FILES or d.name in ("log", "security")) and not f.is_symlink() \
                    and f.stat().st_uid == uid:
                os.chmod(f, 0o600)


class ProfileLocked(RuntimeError):
    """Raised when a profile already has a running controller (it holds the profile's lock)."""


def lock_profile(profile: str | None) -> int:
    """Take the profile's controller lock (held until this process exits); returns its file descriptor.

    Raises ProfileLocked, naming the holder's pid, if another controller holds it. Touches nothing else.
    """
    path = profile_dir(profile) / "pid" / "controller.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.read(fd, 32).decode().strip() or "?"
        finally:
            os.close(fd)
        name = profile or DEFAULT_PROFILE
        raise ProfileLocked(f"profile {name!r} already has a running controller (pid {holder}); "
                            f"stop it first (`sched-lab cluster stop --profile {name}`)") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def process_identity(pid: int | None, settle_s: float = 0.0) -> dict | None:
    """A live process's start time (clock ticks after boot, from /proc) and command line; None if it is gone.

    `settle_s`: a process just started may still be in its exec, its command line empty (Popen returns once the
    exec is under way: under load, 249 of 300 fresh children read so); wait up to this long for it to show."""
    deadline = time.monotonic() + settle_s
    while True:
        ident = _identity_now(pid)
        if ident is None or ident["cmdline"] != [""] or time.monotonic() >= deadline:
            return ident
        time.sleep(0.001)


def _identity_now(pid: int | None) -> dict | None:
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().decode(errors="replace").rstrip("\0").split("\0")
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return {"start": int(fields[19]), "cmdline": cmdline}


def is_same_process(pid: int | None, identity: dict | None) -> bool:
    """Whether `pid` is alive and still the process recorded as `identity` (same start time and command line)."""
    now = process_identity(pid)
    return bool(now and identity and now["start"] == identity.get("start")
                and now["cmdline"] == identity.get("cmdline"))


def list_profiles() -> list[str]:
    """Names of the profiles under the root."""
    root = sched_lab_dir()
    if not root.is_dir():
        return []
    return sorted(p.name[len("profile_"):] for p in root.iterdir() if p.is_dir() and p.name.startswith("profile_"))


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What a connection file holds: where the controller listens, its key, and its settings."""

    host: str
    port: int
    key: str
    scheme: str = "leastload"
    hwm: int = 1
    controller_pid: int | None = None
    profile: str | None = None
    signature_scheme: str = "hmac-sha256"
    tls_fingerprint: str | None = None      # "sha256:<hex>": connect with TLS and accept only this certificate

    def __post_init__(self) -> None:
        if not (0 < int(self.port) < 65536):
            raise ValueError(f"invalid port {self.port!r}")
        if not self.key:
            raise ValueError("a connection file needs a key")


def write_connection_file(path: Path, info: ConnectionInfo) -> Path:
    """Write `info` as JSON with mode 0600 (atomically: write then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(info), fh, indent=1)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def read_connection_file(path: str | Path) -> ConnectionInfo:
    """Parse a connection file. Raises FileNotFoundError, or ValueError if it is not one."""
    with open(path) as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a connection file")
    known = set(ConnectionInfo.__dataclass_fields__)
    return ConnectionInfo(**{k: v for k, v in data.items() if k in known})


def client_file(profile: str | None) -> Path:
    """The client connection file of a profile."""
    return profile_dir(profile) / "security" / CLIENT_FILE


def engine_file(profile: str | None) -> Path:
    """The engine connection file of a profile."""
    return profile_dir(profile) / "security" / ENGINE_FILE


def wait_for_connection_file(path: Path, timeout_s: float, pid: int | None = None) -> ConnectionInfo:
    """Wait until `path` exists (and, with `pid`, was written by that controller). Raises TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            info = read_connection_file(path)
            if pid is None or info.controller_pid == pid:
                return info
        except (FileNotFoundError, ValueError, json.JSONDecodeError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no connection file at {path} after {timeout_s:.0f} s")
        time.sleep(0.02)


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists (and is not a zombie we can see)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
