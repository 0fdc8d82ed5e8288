"""``runs/index.sqlite``: one row per run, so that listing thousands of runs stays fast.

The index is a cache of the run folders' ``run.json`` files: WAL mode and a busy timeout
make it safe with several training processes writing at once, and a missing or stale
row is rebuilt from the folder.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

INDEX_NAME = "index.sqlite"
COLUMNS = (
    "run_id",
    "path",
    "profile_id",
    "agent_id",
    "env_id",
    "status",
    "pid",
    "host",
    "batch_id",
    "seed",
    "started_at",
    "finished_at",
    "steps",
    "best_return",
    "final_return",
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    profile_id TEXT,
    agent_id TEXT,
    env_id TEXT,
    status TEXT,
    pid INTEGER,
    host TEXT,
    batch_id TEXT,
    seed INTEGER,
    started_at REAL,
    finished_at REAL,
    steps INTEGER,
    best_return REAL,
    final_return REAL
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started_at);
"""


class RunIndex:
    """The SQLite index of one runs folder."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = Path(runs_dir)
        self.path = self.runs_dir / INDEX_NAME

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.executescript(_SCHEMA)
            yield conn
        finally:
            conn.close()

    def upsert(self, record: dict[str, Any]) -> None:
        """Insert or replace the row for ``record['run_id']`` (unknown keys are ignored)."""
        row = {c: record.get(c) for c in COLUMNS}
        placeholders = ", ".join("?" for _ in COLUMNS)
        sql = f"INSERT OR REPLACE INTO runs ({', '.join(COLUMNS)}) VALUES ({placeholders})"
        for attempt in range(20):
            try:
                with self._connect() as conn:
                    conn.execute(sql, [row[c] for c in COLUMNS])
                return
            except sqlite3.OperationalError:
                # "database is locked" under heavy contention despite the busy timeout.
                if attempt == 19:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def rows(self, **filters: Any) -> list[dict[str, Any]]:
        """Rows matching every given column=value filter (None values are ignored), oldest first."""
        where = [(k, v) for k, v in filters.items() if v is not None]
        for key, _ in where:
            if key not in COLUMNS:
                raise ValueError(f"unknown index column '{key}'")
        sql = f"SELECT {', '.join(COLUMNS)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(f"{k} = ?" for k, _ in where)
        sql += " ORDER BY started_at"
        with self._connect() as conn:
            return [dict(zip(COLUMNS, r, strict=True)) for r in conn.execute(sql, [v for _, v in where])]

    def delete(self, run_id: str) -> None:
        """Forget a run (its folder is gone)."""
        with self._connect() as conn:
            conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
