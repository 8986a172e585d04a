"""Helpers of the live durability tests: count a task's runs from its marker files, read the task database."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def runs(marker_dir: Path, tag: str) -> int:
    """How many times the task tagged `tag` started (one marker file per run)."""
    return sum(1 for p in marker_dir.iterdir() if p.name.split(".")[0] == tag)


def rows(db_path: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """`sql` on the profile's task database, read-only (the controller may hold it open)."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()
