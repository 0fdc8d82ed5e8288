"""``daedalus runs compare``: runs grouped (by profile, by default) into one row per group.

Each row aggregates the group's runs (typically the seeds of one profile): final and best
return as mean ± std over runs, steps, wall time, training steps/s, and — with a
``threshold`` — the training-clock time at which each run's periodic evaluation first
reached it. Numbers come from each run's ``run.json`` and ``artifacts.json`` (the
evaluations the training schedule recorded); corrupt runs are left out and counted.

Also the plots: :func:`plot_comparison` (each group's evaluation curve, mean ± std or IQM with
a bootstrap interval: :func:`iqm`, :func:`bootstrap_iqm_ci`), :func:`write_run_plots` (a run's
``plots/``, one PNG per quantity, drawn at the end of training) and :func:`plot_run` (all of a
run's curves in one figure, ``daedalus plot``). matplotlib is imported only when drawing.
"""

from __future__ import annotations

import fnmatch
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daedalus.errors import DaedalusError, MissingDependencyError
from daedalus.runs.io import atomic_write_bytes, read_json
from daedalus.runs.store import list_runs, resolve_run

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike

__all__ = [
    "BANDS",
    "CompareRow",
    "bootstrap_iqm_ci",
    "compare_runs",
    "format_comparison",
    "iqm",
    "plot_comparison",
    "plot_run",
    "write_run_plots",
]


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


# --------------------------------------------------------------------------- IQM (rliable)


def iqm(values: ArrayLike) -> float:
    """Interquartile mean of ``values``: the mean of their middle 50%; non-finite values are left out.

    The definition of ``scipy.stats.trim_mean(values, 0.25)``, which rliable's ``aggregate_iqm``
    calls: of ``n`` values, ``n // 4`` whole values are dropped at each end of the sorted values
    and the rest averaged. No value gets a fractional weight: of 5 values the middle 3 are
    averaged (the weighted definition would count the 2nd and 4th at 3/4), and fewer than 4
    values are all averaged. NaN when no value is finite.
    """
    sample = _finite_sorted(values)
    if sample.size == 0:
        return math.nan
    cut = sample.size // 4
    return float(sample[cut: sample.size - cut].mean())


def bootstrap_iqm_ci(
    values: ArrayLike, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of :func:`iqm` over ``values`` (one per run).

    ``n_resamples`` samples of the finite values are drawn with replacement, each as large as
    the original, from ``numpy.random.default_rng(seed)``; the interval is the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles (numpy's default, linear
    interpolation) of their IQMs, as rliable's ``percentile`` method. The values are sorted
    before drawing, so the interval depends on the values and the seed only, not on their
    order. ``(nan, nan)`` when no value is finite.
    """
    import numpy as np

    _check_bootstrap(n_resamples, confidence)
    sample = _finite_sorted(values)
    size = sample.size
    if size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = np.sort(sample[rng.integers(0, size, size=(n_resamples, size))], axis=1)
    cut = size // 4
    iqms = draws[:, cut: size - cut].mean(axis=1)
    low, high = np.quantile(iqms, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def _finite_sorted(values: ArrayLike) -> Any:
    import numpy as np

    array = np.asarray(values, dtype=float).ravel()
    return np.sort(array[np.isfinite(array)])


def _check_bootstrap(n_resamples: int, confidence: float) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise DaedalusError(f"bootstrap: n_resamples must be a whole number >= 1, got {n_resamples!r}.")
    if not _number(confidence) or not 0 < confidence < 1:
        raise DaedalusError(f"bootstrap: confidence must be between 0 and 1 (0.95 for a 95% interval), got {confidence!r}.")


# --------------------------------------------------------------------------- learning curves

#: What ``plot_comparison(band=...)`` draws around each group's curve.
BANDS = ("std", "iqm")


def plot_comparison(
    rows: list[CompareRow],
    path: str | Path,
    x: str = "steps",
    smooth: int = 1,
    band: str = "std",
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Figure:
    """Learning curves of each group to ``path`` (PNG; .svg and .pdf by suffix), one per group.

    Each run's curve is its periodic evaluations (``artifacts.json`` ``evaluations``: mean
    return against ``step`` or, with ``x="time"``, training seconds). Runs of a group are
    interpolated onto the union of their x values, each only inside its own range; ``smooth``
    > 1 takes a trailing moving average of each run over that many points. At each x, over
    the runs that cover it:

    * ``band="std"``: the mean with a ±1 (population) std band;
    * ``band="iqm"``: the interquartile mean (:func:`iqm`) with a ``confidence`` bootstrap
      interval (:func:`bootstrap_iqm_ci`, ``n_resamples`` draws, seeded by ``seed`` at every
      point). A group's runs are resampled among themselves only: rliable's stratified
      bootstrap, with each group one stratum.

    Returns the matplotlib Figure (drawn by the Agg canvas; pyplot is not used).
    """
    if x not in ("steps", "time"):
        raise DaedalusError(f"runs compare: --x must be 'steps' or 'time', got {x!r}.")
    if band not in BANDS:
        raise DaedalusError(f"runs compare: --band must be 'std' or 'iqm', got {band!r}.")
    if band == "iqm":
        _check_bootstrap(n_resamples, confidence)
    new_figure = _figure_factory()
    import numpy as np

    key = "step" if x == "steps" else "train_seconds"
    figure, (axes,) = _panels(new_figure, 1, 1, (8, 5))
    drawn = 0
    for row in rows:
        curves = _evaluation_curves(row, key)
        if not curves:
            continue
        grid = np.unique(np.concatenate([c[:, 0] for c in curves]))
        values = []
        for c in curves:
            # Interpolate inside a run's own range only; outside it the run has no value (NaN).
            v = np.interp(grid, c[:, 0], c[:, 1])
            v[(grid < c[0, 0]) | (grid > c[-1, 0])] = np.nan
            values.append(_trailing_mean(v, smooth))
        stacked = np.stack(values)
        if band == "std":
            center, spread = np.nanmean(stacked, axis=0), np.nanstd(stacked, axis=0)
            low, high = center - spread, center + spread
        else:
            center = np.array([iqm(column) for column in stacked.T])
            low, high = np.array([bootstrap_iqm_ci(column, n_resamples, confidence, seed) for column in stacked.T]).T
        (line,) = axes.plot(grid, center, label=f"{row.group} ({len(curves)} run{'s' if len(curves) > 1 else ''})")
        axes.fill_between(grid, low, high, color=line.get_color(), alpha=0.2)
        drawn += 1
    if drawn == 0:
        raise DaedalusError("runs compare --plot: none of these runs has periodic evaluations to draw (eval_every_steps: 0?).")
    axes.set_xlabel("environment steps" if x == "steps" else "training seconds")
    axes.set_ylabel("evaluation mean return")
    if band == "std":
        axes.set_title("mean ± std over runs")
    else:
        axes.set_title(f"IQM over runs, {confidence * 100:g}% bootstrap CI ({n_resamples:,} resamples)")
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, Path(path), dpi=100)
    return figure


def _evaluation_curves(row: CompareRow, key: str) -> list[Any]:
    """Each run's periodic evaluations as a sorted (x, mean return) array; runs without any left out."""
    import numpy as np

    curves = []
    for folder in row.run_paths:
        evaluations = _artifacts(Path(folder)).get("evaluations") or []
        points = [(float(e[key]), float(e["mean_return"])) for e in evaluations if isinstance(e, dict) and _number(e.get(key)) and _number(e.get("mean_return"))]
        if points:
            curves.append(np.array(sorted(points)))
    return curves


def _trailing_mean(values: Any, window: int) -> Any:
    """Mean of the non-NaN values among the last ``window`` points at each position (NaN stays NaN)."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    if window <= 1:
        return values.copy()
    present = ~np.isnan(values)
    kernel = np.ones(window)
    # Full convolution with a row of ones: entry i is the sum of points i - window + 1 .. i.
    sums = np.convolve(np.where(present, values, 0.0), kernel)[: len(values)]
    counts = np.convolve(present.astype(float), kernel)[: len(values)]
    out = np.full_like(values, np.nan)
    np.divide(sums, counts, out=out, where=present)
    return out


# --------------------------------------------------------------------------- one run's curves

#: The curves drawn from ``metrics.csv``, in this order when the run logged them, then every
#: ``loss/*`` column sorted by name.
RUN_PLOT_KEYS = (
    "charts/episode_return", "eval/mean_return", "charts/episode_length", "charts/steps_per_second",
)

#: What :func:`write_run_plots` writes into ``<run>/plots/``, each file only when the run
#: logged what it draws: file -> its panels (title, metrics.csv columns drawn on it);
#: ``loss/*`` is one panel per loss column.
RUN_PLOT_FILES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "returns.png": [
        ("return", ("charts/episode_return", "eval/mean_return")),
        # Multi-agent runs: each policy's return per agent (training and evaluations).
        ("return per agent, by policy", ("charts/*/episode_return", "eval/*/mean_return")),
    ],
    "length.png": [("episode length", ("charts/episode_length",))],
    "losses.png": [("", ("loss/*",))],
    "steps_per_second.png": [("env steps per second", ("charts/steps_per_second",))],
}

#: Resolution of the files of ``plots/``.
RUN_PLOT_DPI = 90


def write_run_plots(run_dir: str | Path, smooth: int = 10) -> list[Path]:
    """A run's learning curves from its ``metrics.csv`` into ``<run_dir>/plots/``, one PNG per quantity.

    ``returns.png`` (training return and periodic evaluations on one panel), ``length.png``,
    ``losses.png`` (one panel per ``loss/*`` column) and ``steps_per_second.png``
    (``RUN_PLOT_FILES``), each only when the run logged what it draws, against environment
    steps. Noisy series get a trailing moving average over ``smooth`` logged points drawn
    over the raw values. Returns the files written: none when ``metrics.csv`` has no curve yet.

    Called at the end of training, so it raises only :class:`DaedalusError`
    (:class:`MissingDependencyError` without matplotlib) naming the run and the cause, and it
    changes no global state: matplotlib's ``Figure`` and Agg canvas are used directly, never
    pyplot (no backend switch, no figure left open). Files are written atomically.
    """
    folder = Path(run_dir)
    if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 1:
        raise DaedalusError(f"plots: smooth must be a whole number >= 1 (1: raw values only), got {smooth!r}.")
    try:
        series = _read_series(folder)
        if not series:
            return []
        new_figure = _figure_factory()
        written = []
        for name, layout in RUN_PLOT_FILES.items():
            panels = _present_panels(layout, series)
            if not panels:
                continue
            columns = min(3, len(panels))
            figure, axes = _panels(new_figure, len(panels), columns, (8, 4.5) if columns == 1 else (4.2, 2.8), title=folder.name)
            for index, (ax, (title, keys)) in enumerate(zip(axes, panels, strict=True)):
                # The x label only under the last panel of each column.
                _draw_panel(ax, title, {k: series[k] for k in keys}, smooth, xlabel=index + columns >= len(panels))
            written.append(_save(figure, folder / "plots" / name, RUN_PLOT_DPI))
    except DaedalusError:
        raise
    except Exception as exc:  # drawn after the run is saved: one clear error, whatever broke
        raise DaedalusError(
            f"{folder}: the learning-curve plots could not be drawn ({type(exc).__name__}: {exc}). The run itself is unaffected."
        ) from exc
    return written


def plot_run(run: str | Path, output: str | Path | None = None, runs_dir: str | Path = "runs", smooth: int = 10) -> tuple[Path, list[str]]:
    """Learning curves of one run from its ``metrics.csv`` to ``<run>/plots/curves.png`` (or ``output``).

    All of them in one overview figure, one panel per key: the return curves, episode length
    and steps/s (``RUN_PLOT_KEYS``) and every ``loss/*`` column, against environment steps;
    noisy series (training returns and losses) get a trailing moving average over ``smooth``
    logged points, drawn over the raw values. The format follows ``output``'s suffix (PNG,
    SVG, PDF). Returns the file and the keys drawn. A cell of ``metrics.csv`` that is not a
    number raises ``ValueError`` and a damaged file ``csv.Error``, as they are
    (:func:`write_run_plots` turns them into a :class:`DaedalusError`).
    """
    folder = resolve_run(run, Path(runs_dir)).path
    series = _read_series(folder)
    if not series:
        raise DaedalusError(f"{folder}: metrics.csv has no curves to plot yet (train the run longer).")
    new_figure = _figure_factory()
    figure, axes = _panels(new_figure, len(series), 2, (5, 2.8), title=folder.name)
    for index, (ax, key) in enumerate(zip(axes, series, strict=True)):
        _draw_panel(ax, key, {key: series[key]}, smooth, xlabel=index + 2 >= len(series))
    target = Path(output) if output is not None else folder / "plots" / "curves.png"
    return _save(figure, target, RUN_PLOT_DPI), list(series)


def _read_series(folder: Path) -> dict[str, Any]:
    """``{key: (steps, values) array}`` of the drawn columns of ``metrics.csv``, in drawing order.

    Empty cells and non-finite values are left out; a cell that is not a number raises
    float's ``ValueError``.
    """
    import csv

    import numpy as np

    try:
        handle = open(folder / "metrics.csv", newline="", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise DaedalusError(f"{folder}: no metrics.csv to plot ({exc.strerror or exc}).") from None
    with handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        if "step" not in header:
            return {}
        per_policy = sorted(k for k in header if fnmatch.fnmatch(k, "charts/*/episode_return") or fnmatch.fnmatch(k, "eval/*/mean_return"))
        keys = [k for k in RUN_PLOT_KEYS if k in header] + per_policy + sorted(k for k in header if k.startswith("loss/"))
        columns: list[tuple[str, int, list[tuple[float, float]]]] = [(k, header.index(k), []) for k in keys]
        step_column = header.index("step")
        for row in reader:
            if len(row) <= step_column or not row[step_column]:
                continue
            step = float(row[step_column])
            for _, column, points in columns:
                if column < len(row) and row[column] != "":
                    value = float(row[column])
                    if math.isfinite(value) and math.isfinite(step):
                        points.append((step, value))
    return {key: np.array(points) for key, _, points in columns if points}


def _present_panels(layout: list[tuple[str, tuple[str, ...]]], series: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """A file's panels with the keys the run logged; ``loss/*`` becomes one panel per loss column."""
    panels = []
    for title, keys in layout:
        if keys == ("loss/*",):
            panels += [(key, [key]) for key in series if key.startswith("loss/")]
        elif present := [name for key in keys for name in (fnmatch.filter(series, key) if "*" in key else [key]) if name in series]:
            panels.append((title, present))
    return panels


def _draw_panel(ax: Axes, title: str, curves: dict[str, Any], smooth: int, xlabel: bool) -> None:
    """Each curve raw, and with its trailing mean over ``smooth`` points drawn over it (not evaluations)."""
    for key, curve in curves.items():
        if key.startswith("eval/"):  # few points, each already a mean over episodes
            ax.plot(curve[:, 0], curve[:, 1], marker="o", markersize=3, label=key)
            continue
        smoothed = smooth > 1 and len(curve) > 1
        (raw,) = ax.plot(curve[:, 0], curve[:, 1], alpha=0.35 if smoothed else 1.0, label="_raw" if smoothed else key)
        if smoothed:
            ax.plot(curve[:, 0], _trailing_mean(curve[:, 1], smooth), color=raw.get_color(), label=f"{key} (mean of {smooth})")
    ax.set_title(title)
    if xlabel:
        ax.set_xlabel("environment steps")
    # About 5 ticks per axis instead of up to 9: ticks are most of matplotlib's drawing time
    # (a run's plots took 30% less, measured), and small panels read better with fewer.
    ax.locator_params(nbins=4)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize="small")


# --------------------------------------------------------------------------- matplotlib


def _figure_factory() -> Callable[[tuple[float, float]], Figure]:
    """A maker of matplotlib Figures drawn by the Agg canvas, or a one-line install hint.

    Figure and FigureCanvasAgg directly, not pyplot: importing pyplot and ``matplotlib.use``
    would switch the backend of the whole process (a notebook's inline plots) and keep every
    figure in pyplot's list until closed. Importing them costs about as much as pyplot.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("matplotlib", "plot", "Plotting learning curves") from None

    def new_figure(size: tuple[float, float]) -> Figure:
        figure = Figure(figsize=size)
        FigureCanvasAgg(figure)  # attaches itself to the figure
        return figure

    return new_figure


def _panels(
    new_figure: Callable[[tuple[float, float]], Figure],
    count: int,
    columns: int,
    panel_inches: tuple[float, float],
    title: str | None = None,
) -> tuple[Figure, list[Axes]]:
    """A figure of ``count`` panels in rows of ``columns``, ``panel_inches`` per panel, with fixed margins.

    Fixed margins in inches rather than ``tight_layout``, which draws the whole figure once
    more to measure its text: that doubled the time of a run's 11-panel figure.
    """
    rows = math.ceil(count / columns)
    width, height = columns * panel_inches[0], rows * panel_inches[1] + (0.3 if title else 0.0)
    left, right, bottom, top = 0.8, 0.25, 0.55, 0.35 + (0.3 if title else 0.0)  # inches
    gap_x, gap_y = 0.8, 0.75  # room for the y tick labels of the next panel; x ticks and the next title
    figure = new_figure((width, height))
    panel_w = (width - left - right - (columns - 1) * gap_x) / columns
    panel_h = (height - bottom - top - (rows - 1) * gap_y) / rows
    figure.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
        wspace=gap_x / panel_w, hspace=gap_y / panel_h,
    )
    axes = list(figure.subplots(rows, columns, squeeze=False).flat)
    for ax in axes[count:]:
        ax.set_visible(False)
    if title:
        figure.suptitle(title, y=1 - 0.08 / height)  # a fixed 0.08 in from the top, whatever the height
    return figure, axes[:count]


def _save(figure: Figure, target: Path, dpi: int) -> Path:
    """Render ``figure`` in the format of ``target``'s suffix (PNG without one), written atomically."""
    import io

    fmt = target.suffix[1:].lower() or "png"
    if fmt not in figure.canvas.get_supported_filetypes():
        raise DaedalusError(f"{target}: matplotlib cannot write '.{fmt}' images. Name a .png (or .svg, .pdf) file.")
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=dpi)
    try:
        atomic_write_bytes(target, buffer.getvalue())
    except OSError as exc:
        raise DaedalusError(f"{target}: the image cannot be written ({exc.strerror or exc}).") from None
    return target
