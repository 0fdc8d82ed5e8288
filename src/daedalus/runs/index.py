"""``runs/index.sqlite``: one row per run, so that listing thousands of runs stays fast.

The index is a cache of the run folders' ``run.json`` files: WAL mode and a busy timeout
make it safe with several training processes writing at once, and a missing or stale
row is rebuilt from the folder. Every value passes through :func:`validate_record` on
its way in, so a hand-edited or damaged ``run.json`` becomes a row with status
``corrupt`` instead of an exception inside SQLite.
"""

from __future__ import annotations

import math
import numbers
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

INDEX_NAME = "index.sqlite"
CORRUPT = "corrupt"
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
# The type of every column, checked before a value reaches SQLite (which raises on an int
# beyond 64 bits, a list, or a string with lone surrogates, and turns NaN into NULL).
_TEXT = ("run_id", "path", "profile_id", "agent_id", "env_id", "status", "host", "batch_id")
_INTEGER = ("pid", "seed", "steps")
_REAL = ("started_at", "finished_at", "best_return", "final_return")
# Returns are results, not bookkeeping: a diverged run legitimately reports NaN or inf, so
# such a value is indexed as unknown (None) instead of marking the run corrupt.
_RESULTS = ("best_return", "final_return")
_REQUIRED = ("run_id", "path", "status", "started_at")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
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


def _show(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int too long for repr() (over 4300 digits)
        return f"an integer of {value.bit_length()} bits"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    for cls, name in names.items():
        if isinstance(value, cls):
            return name
    if isinstance(value, numbers.Number):
        return "a number"
    return f"a {type(value).__name__}"


def is_clean_text(value: Any) -> bool:
    """Whether ``value`` is a string SQLite (and a terminal) can take: no lone surrogates."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def as_int64(value: Any) -> int | None:
    """``value`` as a signed 64-bit int; None for a non-integer (booleans too) or out of range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    number = int(value)
    return number if INT64_MIN <= number <= INT64_MAX else None


def as_finite_float(value: Any) -> float | None:
    """``value`` as a finite float; None for a non-number (booleans too), NaN or an infinity."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):  # an int with hundreds of digits
        return None
    return number if math.isfinite(number) else None


def check_field(
    field: str, value: Any, kind: str, nonfinite_ok: bool = False
) -> tuple[Any, str | None]:
    """``(clean value, problem)`` of one present value that must be of ``kind``.

    ``kind`` is ``"text"`` (a UTF-8 encodable str), ``"int"`` (an integer within signed
    64 bits, not a boolean) or ``"real"`` (a finite number, not a boolean). The clean value
    is None when there is a problem; ``problem`` names the field and says what is wrong.
    With ``nonfinite_ok``, NaN and infinities become None without a problem.
    """
    if kind == "text":
        if is_clean_text(value):
            return value, None
        if isinstance(value, str):
            return None, f"'{field}' contains characters that are not valid UTF-8"
        return None, f"'{field}' is {_kind(value)} ({_show(value)}), expected a string"
    if kind == "int":
        number = as_int64(value)
        if number is not None:
            return number, None
        if not isinstance(value, bool) and isinstance(value, numbers.Integral):
            return None, f"'{field}' is {_show(value)}, outside the signed 64-bit integer range"
        return None, f"'{field}' is {_kind(value)} ({_show(value)}), expected an integer"
    real = as_finite_float(value)
    if real is not None:
        return real, None
    if not isinstance(value, bool) and isinstance(value, numbers.Real):
        if nonfinite_ok:
            return None, None
        return None, f"'{field}' is {_show(value)}, expected a finite number"
    return None, f"'{field}' is {_kind(value)} ({_show(value)}), expected a number"


def _check(column: str, value: Any, required: bool) -> tuple[Any, str | None]:
    """(clean value, problem) for one index column."""
    if value is None:
        return None, (f"'{column}' is missing" if required else None)
    kind = "text" if column in _TEXT else "int" if column in _INTEGER else "real"
    return check_field(column, value, kind, nonfinite_ok=column in _RESULTS)


def validate_record(data: Any, folder: Path | None = None) -> tuple[dict[str, Any], list[str]]:
    """Check a run.json object against the index columns: ``(clean_row, problems)``.

    ``clean_row`` has every column of :data:`COLUMNS`, each value of its column's type
    (str, int within signed 64 bits, finite float) or None; a value with a problem is
    None, and when there is any problem the row's status is ``corrupt``. ``problems`` are
    short sentences naming the field (``'steps' is 1180591620717411303424, outside the
    signed 64-bit integer range``), without the file name. With ``folder``, the run id
    must equal the folder name, the row's run id is always the folder name, and ``path``
    is the folder's when run.json has none or has any problem.
    """
    problems: list[str] = []
    if not isinstance(data, dict):
        problems.append(f"the top level is {_kind(data)}, not an object")
        data = {}
    # With a folder, its name and location stand in for a missing run id or path.
    required = _REQUIRED if folder is None else ("status", "started_at")
    row: dict[str, Any] = {}
    for column in COLUMNS:
        value, problem = _check(column, data.get(column), column in required)
        row[column] = value
        if problem:
            problems.append(problem)
    if row["status"] == CORRUPT:
        # Daedalus never writes this status; listings rely on a corrupt run having a reason.
        problems.append(f"'status' is '{CORRUPT}', which is not a status a run is saved with")
    error = data.get("error")
    if error is not None and not isinstance(error, dict):
        problems.append(f"'error' is {_kind(error)} ({_show(error)}), expected an object")
    if folder is not None:
        name = Path(folder).name
        if row["run_id"] is not None and row["run_id"] != name:
            problems.append(f"'run_id' is {row['run_id']!r} but the folder is named {name!r}")
        row["run_id"] = name if is_clean_text(name) else None
        # A damaged run.json's own path may well be stale (a copied folder): point at the
        # folder to repair. A good one keeps its recorded path.
        if row["path"] is None or problems:
            location = os.path.abspath(folder)
            row["path"] = location if is_clean_text(location) else None
    if problems:
        row["status"] = CORRUPT
    return row, problems


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

    def upsert(self, record: Any, folder: Path | None = None) -> dict[str, Any]:
        """Insert or replace the row of a run.json object (unknown keys are ignored).

        Every value goes through :func:`validate_record` first, so nothing SQLite cannot
        store reaches it: a record with a problem is stored with status ``corrupt`` and its
        bad values as NULL. With ``folder`` (the run's folder), the row is keyed by the
        folder name. Returns the stored row; raises ValueError when no run id or path is
        known (a programming error: pass ``folder``).
        """
        row, _ = validate_record(record, folder)
        if row["run_id"] is None or row["path"] is None:
            raise ValueError(
                "cannot index a run without a valid 'run_id' and 'path'; pass its folder"
            )
        placeholders = ", ".join("?" for _ in COLUMNS)
        sql = f"INSERT OR REPLACE INTO runs ({', '.join(COLUMNS)}) VALUES ({placeholders})"
        for attempt in range(20):
            try:
                with self._connect() as conn:
                    conn.execute(sql, [row[c] for c in COLUMNS])
                break
            except sqlite3.OperationalError:
                # "database is locked" under heavy contention despite the busy timeout.
                if attempt == 19:
                    raise
                time.sleep(0.05 * (attempt + 1))
        return row

    def rows(self, **filters: Any) -> list[dict[str, Any]]:
        """Rows matching every given column=value filter (None values are ignored), oldest first.

        Rows without a start time (corrupt runs) come first; ties are ordered by run id.
        """
        where = [(k, v) for k, v in filters.items() if v is not None]
        for key, _ in where:
            if key not in COLUMNS:
                raise ValueError(f"unknown index column '{key}'")
        sql = f"SELECT {', '.join(COLUMNS)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(f"{k} = ?" for k, _ in where)
        sql += " ORDER BY started_at, run_id"
        with self._connect() as conn:
            return [dict(zip(COLUMNS, r, strict=True)) for r in conn.execute(sql, [v for _, v in where])]

    def delete(self, run_id: str) -> None:
        """Forget a run (its folder is gone)."""
        with self._connect() as conn:
            conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
