"""``daedalus runs compare``: runs grouped (by profile, by default) into one row per group.

Each row aggregates the group's runs (typically the seeds of one profile): final and best
return as mean ± std over runs, steps, wall time, training steps/s, and — with a
``threshold`` — the training-clock time at which each run's periodic evaluation first
reached it. Numbers come from each run's ``run.json`` and ``artifacts.json`` (the
evaluations the training schedule recorded); corrupt runs are left out and counted.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from daedalus.errors import DaedalusError
from daedalus.runs.io import read_json
from daedalus.runs.store import list_runs, resolve_run

__all__ = ["CompareRow", "compare_runs", "format_comparison"]


@dataclass
class CompareRow:
    """One group of runs (e.g. the seeds of one profile)."""

    group: str
    runs: int
    final_mean: float | None
    final_std: float | None
    best_mean: float | None
    best_std: float | None
    steps: int
    wall_s: float | None
    steps_per_s: float | None
    #: Mean training seconds to the first evaluation >= threshold, over the runs that got there.
    time_to_threshold_s: float | None = None
    #: How many runs of the group reached the threshold.
    reached: int = 0
    run_ids: list[str] = field(default_factory=list)


def compare_runs(
    runs: Sequence[str | Path] = (),
    *,
    profile: str | None = None,
    batch: str | None = None,
    runs_dir: str | Path = "runs",
    threshold: float | None = None,
    by: str = "profile_id",
) -> tuple[list[CompareRow], int]:
    """Rows grouped by ``by`` (a run.json key) for the given runs, or every run of a profile or batch.

    Returns ``(rows, corrupt)``: corrupt runs among those selected are skipped and counted.
    """
    runs_dir = Path(runs_dir)
    if runs:
        records = [resolve_run(ref, runs_dir).index_record() for ref in runs]
    else:
        if profile is None and batch is None:
            raise DaedalusError("runs compare: name runs, or --profile ID, or --batch ID. 'daedalus runs list' shows them.")
        records = list_runs(runs_dir, profile_id=profile, batch_id=batch)
    if not records:
        raise DaedalusError(f"runs compare: no runs match in {runs_dir}. 'daedalus runs list' shows what there is.")
    corrupt = [r for r in records if r.get("status") == "corrupt"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("status") == "corrupt":
            continue
        folder = Path(record["path"])
        data = read_json(folder / "run.json")
        key = data.get(by)
        groups.setdefault(str(key), []).append({**data, "_folder": folder})
    return [_row(group, members, threshold) for group, members in groups.items()], len(corrupt)


def _row(group: str, members: list[dict[str, Any]], threshold: float | None) -> CompareRow:
    finals = [float(m["final_return"]) for m in members if _number(m.get("final_return"))]
    bests = [float(m["best_return"]) for m in members if _number(m.get("best_return"))]
    walls = [float(m["duration_s"]) for m in members if _number(m.get("duration_s"))]
    rates: list[float] = []
    times: list[float] = []
    for member in members:
        artifacts = _artifacts(member["_folder"])
        split = artifacts.get("time_split")
        if isinstance(split, dict) and _number(split.get("train_seconds")) and split["train_seconds"] > 0:
            rates.append(float(split.get("steps", member.get("steps") or 0)) / float(split["train_seconds"]))
        if threshold is not None:
            hit = next(
                (e for e in artifacts.get("evaluations") or [] if isinstance(e, dict) and _number(e.get("mean_return")) and e["mean_return"] >= threshold),
                None,
            )
            if hit is not None and _number(hit.get("train_seconds")):
                times.append(float(hit["train_seconds"]))
    return CompareRow(
        group=group,
        runs=len(members),
        final_mean=_mean(finals),
        final_std=_std(finals),
        best_mean=_mean(bests),
        best_std=_std(bests),
        steps=int(statistics.median([int(m.get("steps") or 0) for m in members])),
        wall_s=_mean(walls),
        steps_per_s=_mean(rates),
        time_to_threshold_s=_mean(times),
        reached=len(times),
        run_ids=[str(m.get("run_id")) for m in members],
    )


def _artifacts(folder: Path) -> dict[str, Any]:
    try:
        data = read_json(folder / "artifacts.json")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _std(values: list[float]) -> float | None:
    """Population standard deviation over runs (0 for one run)."""
    return statistics.pstdev(values) if values else None


def format_comparison(rows: list[CompareRow], fmt: str = "markdown", threshold: float | None = None) -> str:
    """The rows as ``markdown``, ``csv`` or ``json`` text."""
    import json

    if fmt == "json":
        return json.dumps([asdict(r) for r in rows], indent=2)
    headers = ["group", "runs", "final return", "best return", "steps", "wall (s)", "steps/s"]
    if threshold is not None:
        headers.append(f"time to {threshold:g} (s)")
    table = []
    for r in rows:
        cells = [r.group, str(r.runs), _pm(r.final_mean, r.final_std), _pm(r.best_mean, r.best_std), str(r.steps), _num(r.wall_s, 1), _num(r.steps_per_s, 0)]
        if threshold is not None:
            cells.append(f"{_num(r.time_to_threshold_s, 2)} ({r.reached}/{r.runs})")
        table.append(cells)
    if fmt == "csv":
        import csv
        import io

        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(headers)
        writer.writerows(table)
        return out.getvalue()
    if fmt != "markdown":
        raise DaedalusError(f"runs compare: unknown format '{fmt}'. Use markdown, csv or json.")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table]
    return "\n".join(lines)


def _pm(mean: float | None, std: float | None) -> str:
    return "-" if mean is None else f"{mean:.2f} ± {std or 0.0:.2f}"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"
