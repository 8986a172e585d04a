"""Logging set-up shared by the controller and engine processes."""

from __future__ import annotations

import logging
import os
import stat
import sys
from pathlib import Path


def configure_logging(path: Path | None, name: str) -> None:
    """Log to `path` (or stderr), one line per record. A log file is private to its user (mode 0600)."""
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid():
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
    handler: logging.Handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {name}[%(process)d] %(levelname)s %(message)s"))
    root = logging.getLogger("real_cluster")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
