"""Logging set-up shared by the controller and engine processes."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def configure_logging(path: Path | None, name: str) -> None:
    """Log to `path` (or stderr), one line per record."""
    handler: logging.Handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {name}[%(process)d] %(levelname)s %(message)s"))
    root = logging.getLogger("real_cluster")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
