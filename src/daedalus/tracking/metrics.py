"""``metrics.csv`` and the logger that fans scalars out to every sink."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from daedalus.types import MetricSink


class CSVMetricWriter:
    """One row per :meth:`log` call in ``metrics.csv``; a new metric name widens the header."""

    def __init__(self, path: Path, keep_until: int | None = None) -> None:
        self.path = Path(path)
        self.columns: list[str] = ["step"]
        self.rows: list[dict[str, Any]] = []
        self._handle: Any = None
        self._writer: Any = None
        if keep_until is not None:
            self._continue(keep_until)

    def _continue(self, keep_until: int) -> None:
        """A resumed run: keep the existing rows up to step ``keep_until`` (later ones were
        logged after the checkpoint the run resumes from) and rewrite the file with them."""
        if not self.path.is_file():
            return
        with open(self.path, newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.DictReader(handle)
            for name in reader.fieldnames or []:
                if name not in self.columns:
                    self.columns.append(name)
            for row in reader:
                try:
                    step = int(float(row.get("step") or "nan"))
                except ValueError:
                    continue
                if step <= keep_until:
                    self.rows.append({k: v for k, v in row.items() if k in self.columns and v not in (None, "")})
        self._rewrite()

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Append a row; rewrite the file when a column appears for the first time."""
        row = {"step": int(step), **{k: _scalar(v) for k, v in metrics.items()}}
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new or self._writer is None:
            self.columns.extend(new)
            self._rewrite()
        else:
            self._writer.writerow(row)
            self._handle.flush()

    def _rewrite(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - kept open
        self._writer = csv.DictWriter(self._handle, fieldnames=self.columns, restval="")
        self._writer.writeheader()
        self._writer.writerows(self.rows)
        self._handle.flush()

    def close(self) -> None:
        """Close the file (a run that logged nothing still gets a header-only file)."""
        if self._writer is None:
            self._rewrite()
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _scalar(value: Any) -> float | int | str:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Read ``metrics.csv`` back as dicts of floats (empty cells are dropped)."""
    out = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            parsed: dict[str, float] = {}
            for key, value in row.items():
                if value in ("", None):
                    continue
                try:
                    parsed[key] = float(value)
                except ValueError:
                    continue
            out.append(parsed)
    return out


class MetricLogger:
    """Fans ``log(step, metrics)`` out to several sinks; remembers the last value of each metric."""

    def __init__(self, sinks: list[MetricSink] | None = None) -> None:
        self.sinks: list[MetricSink] = list(sinks or [])
        self.last: dict[str, float] = {}

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record ``metrics`` at ``step`` in every sink."""
        clean = {k: v for k, v in metrics.items() if not (isinstance(v, float) and math.isnan(v))}
        self.last.update(clean)
        for sink in self.sinks:
            sink.log(step, clean)

    def close(self) -> None:
        """Close every sink."""
        for sink in self.sinks:
            sink.close()
