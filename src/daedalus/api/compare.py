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

__all__ = ["CompareRow", "compare_runs", "format_comparison", "plot_comparison", "plot_run"]


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
    #: The run folders, in the order of ``run_ids``.
    run_paths: list[str] = field(default_factory=list)


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
        run_paths=[str(m["_folder"]) for m in members],
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


# --------------------------------------------------------------------------- learning curves


def plot_comparison(
    rows: list[CompareRow],
    path: str | Path,
    x: str = "steps",
    smooth: int = 1,
) -> Any:
    """Learning curves of each group to ``path`` (PNG): the mean of its runs with a ±1 std band.

    Each run's curve is its periodic evaluations (``artifacts.json`` ``evaluations``: mean
    return against ``step`` or, with ``x="time"``, training seconds). Runs of a group are
    interpolated onto the union of their x values, each only inside its own range, and
    averaged over the runs that cover a point; ``smooth`` > 1 takes a trailing moving average
    over that many points. Returns the matplotlib Figure (saved with the Agg backend).
    """
    plt = _pyplot()
    import numpy as np

    if x not in ("steps", "time"):
        raise DaedalusError(f"runs compare: --x must be 'steps' or 'time', got {x!r}.")
    key = "step" if x == "steps" else "train_seconds"
    figure, axes = plt.subplots(figsize=(8, 5))
    drawn = 0
    for row in rows:
        curves = []
        for folder in row.run_paths:
            evaluations = _artifacts(Path(folder)).get("evaluations") or []
            points = [(float(e[key]), float(e["mean_return"])) for e in evaluations if isinstance(e, dict) and _number(e.get(key)) and _number(e.get("mean_return"))]
            if points:
                curves.append(np.array(sorted(points)))
        if not curves:
            continue
        grid = np.unique(np.concatenate([c[:, 0] for c in curves]))
        values = []
        for c in curves:
            # Interpolate inside a run's own range only; outside it the run has no value (NaN).
            v = np.interp(grid, c[:, 0], c[:, 1])
            v[(grid < c[0, 0]) | (grid > c[-1, 0])] = np.nan
            if smooth > 1:
                v = _trailing_mean(v, smooth)
            values.append(v)
        stacked = np.stack(values)
        mean, std = np.nanmean(stacked, axis=0), np.nanstd(stacked, axis=0)
        (line,) = axes.plot(grid, mean, label=f"{row.group} ({len(curves)} run{'s' if len(curves) > 1 else ''})")
        axes.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        drawn += 1
    if drawn == 0:
        plt.close(figure)
        raise DaedalusError("runs compare --plot: none of these runs has periodic evaluations to draw (eval_every_steps: 0?).")
    axes.set_xlabel("environment steps" if x == "steps" else "training seconds")
    axes.set_ylabel("evaluation mean return")
    axes.set_title("mean ± std over runs")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=100)
    plt.close(figure)
    return figure


def _trailing_mean(values: Any, window: int) -> Any:
    """Mean of the last ``window`` non-NaN points at each position (NaN stays NaN)."""
    import numpy as np

    out = np.full_like(values, np.nan)
    for i in range(len(values)):
        if np.isnan(values[i]):
            continue
        recent = values[max(0, i - window + 1): i + 1]
        out[i] = np.nanmean(recent)
    return out


# --------------------------------------------------------------------------- one run's curves

#: What ``daedalus plot RUN`` draws, in this order, when the run logged it.
RUN_PLOT_KEYS = (
    "charts/episode_return", "eval/mean_return", "charts/episode_length", "charts/steps_per_second",
)


def plot_run(run: str | Path, output: str | Path | None = None, runs_dir: str | Path = "runs", smooth: int = 10) -> tuple[Path, list[str]]:
    """Learning curves of one run from its ``metrics.csv`` to ``<run>/plots/curves.png`` (or ``output``).

    One panel per key: the return curves, episode length and steps/s (``RUN_PLOT_KEYS``) and
    every ``loss/*`` column, against environment steps; noisy series (training returns and
    losses) get a trailing moving average over ``smooth`` logged points, drawn over the raw
    values (ReAllY's aggregator idea). Returns the file and the keys drawn.
    """
    import csv

    plt = _pyplot()
    import numpy as np

    folder = resolve_run(run, Path(runs_dir)).path
    try:
        with open(folder / "metrics.csv", newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise DaedalusError(f"{folder}: no metrics.csv to plot ({exc.strerror or exc}).") from None
    columns = list(rows[0]) if rows else []
    keys = [k for k in RUN_PLOT_KEYS if k in columns] + sorted(k for k in columns if k.startswith("loss/"))
    series: dict[str, Any] = {}
    for key in keys:
        pairs = [(float(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "") and r.get("step")]
        finite = [(x, y) for x, y in pairs if math.isfinite(y)]
        if finite:
            series[key] = np.array(finite)
    if not series:
        raise DaedalusError(f"{folder}: metrics.csv has no curves to plot yet (train the run longer).")
    columns_n = 2
    rows_n = math.ceil(len(series) / columns_n)
    figure, axes = plt.subplots(rows_n, columns_n, figsize=(10, 2.8 * rows_n), squeeze=False)
    for ax, (key, curve) in zip(axes.flat, series.items(), strict=False):
        ax.plot(curve[:, 0], curve[:, 1], alpha=0.35 if smooth > 1 and key != "eval/mean_return" else 1.0, label=key)
        if smooth > 1 and key != "eval/mean_return" and len(curve) > 1:
            ax.plot(curve[:, 0], _trailing_mean(curve[:, 1], smooth), label=f"{key} (mean of {smooth})")
        ax.set_title(key)
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(series):]:
        ax.set_visible(False)
    figure.suptitle(folder.name)
    figure.tight_layout(rect=(0, 0, 1, 0.97))  # room for the title
    target = Path(output) if output is not None else folder / "plots" / "curves.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=90)
    plt.close(figure)
    return target, list(series)


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no display), or a one-line install hint."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from daedalus.errors import MissingDependencyError

        raise MissingDependencyError("matplotlib", "plot", "Plotting learning curves") from None
    return plt
