"""``daedalus runs compare``: rows per profile with numbers taken from the runs themselves."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from daedalus import api
from daedalus.api import compare
from daedalus.errors import DaedalusError, MissingDependencyError
from tests.conftest import write

PROFILES = """
defaults: {total_steps: 1024, num_steps: 64, eval_every_steps: 512, eval_episodes: 2, final_eval_episodes: 3}
small: {agent_id: ppo, env_id: CartPole-v1, num_envs: 4, config: {hidden_sizes: [16]}}
large: {agent_id: ppo, env_id: CartPole-v1, num_envs: 4, config: {hidden_sizes: [64, 64]}}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compare")
    write(root / "p.yaml", PROFILES)
    for seed in (0, 1):
        for result in api.train_many(root / "p.yaml", runs_dir=root / "runs", overrides=[f"seed={seed}"]):
            assert result.status == "completed"
    return root / "runs"


def test_rows_aggregate_the_seeds_of_each_profile(runs: Path) -> None:
    rows, corrupt = api.compare_runs(profile="small", runs_dir=runs, threshold=5.0)
    assert corrupt == 0 and [r.group for r in rows] == ["small"]
    (row,) = rows
    metas = [json.loads(p.read_text()) for p in runs.glob("small-*/run.json")]
    finals = [m["final_return"] for m in metas]
    assert row.runs == 2 and sorted(row.run_ids) == sorted(m["run_id"] for m in metas)
    assert row.final_mean == pytest.approx(statistics.fmean(finals))
    assert row.final_std == pytest.approx(statistics.pstdev(finals))
    assert row.best_mean == pytest.approx(statistics.fmean(m["best_return"] for m in metas))
    assert row.steps == 1024 and row.wall_s == pytest.approx(statistics.fmean(m["duration_s"] for m in metas))
    # Random-ish early policies score >= 5 at the first evaluation: both runs reach it there.
    first_evals = [json.loads((runs / m["run_id"] / "artifacts.json").read_text())["evaluations"][0] for m in metas]
    assert row.reached == 2 and row.time_to_threshold_s == pytest.approx(statistics.fmean(e["train_seconds"] for e in first_evals))
    assert row.steps_per_s is not None and row.steps_per_s > 0


def test_group_by_another_key_and_formats(runs: Path) -> None:
    rows, _ = api.compare_runs(runs_dir=runs, profile="large", by="agent_id")
    assert [(r.group, r.runs) for r in rows] == [("ppo", 2)]
    text = api.format_comparison(rows, "csv")
    (record,) = list(csv.DictReader(io.StringIO(text)))
    assert record["group"] == "ppo" and record["runs"] == "2" and " ± " in record["final return"]
    assert json.loads(api.format_comparison(rows, "json"))[0]["runs"] == 2
    assert api.format_comparison(rows).splitlines()[0].startswith("| group | runs | final return")


def test_cli_compares_runs_and_skips_corrupt_ones(runs: Path) -> None:
    (runs / "broken").mkdir(exist_ok=True)
    (runs / "broken" / "run.json").write_text("{not json")
    ids = sorted(p.parent.name for p in runs.glob("*-*/run.json"))
    result = subprocess.run(
        [sys.executable, "-m", "daedalus", "runs", "compare", *ids, "broken", "--runs-dir", str(runs), "--threshold", "5"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "| group | runs | final return | best return | steps | wall (s) | steps/s | time to 5 (s) |"
    assert sorted(line.split(" | ")[0].lstrip("| ") for line in lines[2:]) == ["large", "small"]
    assert "(1 corrupt run(s) left out" in result.stderr


def test_nothing_selected_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DaedalusError, match="name runs, or --profile ID, or --batch ID"):
        api.compare_runs(runs_dir=tmp_path)
    with pytest.raises(DaedalusError, match="no runs match"):
        api.compare_runs(profile="nope", runs_dir=tmp_path)


def test_plot_draws_one_mean_curve_with_a_band_per_profile(runs: Path, tmp_path: Path) -> None:
    import matplotlib.image

    rows = [row for profile in ("small", "large") for row in api.compare_runs(profile=profile, runs_dir=runs)[0]]
    figure = api.plot_comparison(rows, tmp_path / "curves.png")
    (axes,) = figure.axes
    labels = [line.get_label() for line in axes.get_lines()]
    assert labels == ["small (2 runs)", "large (2 runs)"]
    # Each mean curve is the average of its runs' evaluations at the shared steps (512, 1024).
    small_runs = [json.loads((Path(p) / "artifacts.json").read_text())["evaluations"] for p in rows[0].run_paths]
    expected = [statistics.fmean(run[i]["mean_return"] for run in small_runs) for i in range(2)]
    assert list(axes.get_lines()[0].get_xdata()) == [512.0, 1024.0]
    assert list(axes.get_lines()[0].get_ydata()) == pytest.approx(expected)
    assert len(axes.collections) == 2  # the std bands
    image = matplotlib.image.imread(tmp_path / "curves.png")
    assert image.shape[:2] == (500, 800) and image[..., :3].std() > 0.05  # not blank


def test_cli_plot_and_a_clear_error_without_evaluations(runs: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "daedalus", "runs", "compare", "--profile", "small", "--runs-dir", str(runs),
         "--plot", str(tmp_path / "c.png"), "--x", "time", "--smooth", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "c.png").stat().st_size > 10_000
    rows, _ = api.compare_runs(profile="small", runs_dir=runs)
    rows[0].run_paths = [str(tmp_path)]  # a folder without evaluations
    with pytest.raises(DaedalusError, match="none of these runs has periodic evaluations"):
        api.plot_comparison(rows, tmp_path / "none.png")


def test_plot_run_draws_every_logged_curve_into_plots(runs: Path) -> None:
    import matplotlib.image

    run = sorted(runs.glob("small-*"))[0]
    path, keys = api.plot_run(run)
    assert path == run / "plots" / "curves.png"
    with open(run / "metrics.csv", newline="") as handle:
        columns = next(csv.reader(handle))
    assert keys[:2] == ["charts/episode_return", "eval/mean_return"]
    assert set(keys) == {k for k in columns if k.startswith("loss/")} | {"charts/episode_return", "eval/mean_return", "charts/steps_per_second"}
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 500 and image[..., :3].std() > 0.05
    result = subprocess.run([sys.executable, "-m", "daedalus", "plot", str(run), "-o", str(run / "x.png"), "--smooth", "1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and (run / "x.png").is_file() and f"{len(keys)} curves" in result.stdout


# --------------------------------------------------------------------------- IQM and its bootstrap interval


def test_iqm_drops_whole_quarters_as_scipy_trim_mean_does() -> None:
    assert compare.iqm([4, 1, 3, 2]) == 2.5  # the middle two
    assert compare.iqm([0, 1, 2, 3, 4, 5, 6, 100]) == 3.5  # 2 dropped at each end
    # 5 values: 1 dropped at each end, the middle 3 averaged. The fractional-weight IQM would
    # count 2 and 10 at 3/4 each: (1.5 + 3 + 7.5) / 2.5 = 4.8.
    assert compare.iqm([100, 2, 10, 1, 3]) == 5.0
    assert compare.iqm([1, 2, 9]) == 4.0  # fewer than 4 values: all of them
    assert compare.iqm([math.nan, 4, 1, 3, math.inf, 2]) == 2.5  # non-finite values are left out
    assert math.isnan(compare.iqm([])) and math.isnan(compare.iqm([math.nan]))


@pytest.mark.parametrize(
    ("values", "expected"),
    [  # expected: scipy.stats.trim_mean(values, 0.25), scipy 1.17.1
        ([3.1, -2.0, 7.25, 0.5, 12.0], 3.6166666666666667),
        ([3.1, -2.0, 7.25, 0.5, 12.0, 4.4, -8.3], 2.65),
        ([0.3, 9.7, 1.1, 2.2, 5.5, 4.25, 8.0, 6.6, 3.3, 7.1], 4.825),
        ([212.0, 19.5, 500.0, 87.25, 150.0, 33.0, 481.5, 9.0, 120.75, 300.0, 64.0, 275.5, 13.0], 134.64285714285714),
    ],
)
def test_iqm_equals_scipy_trim_mean(values: list[float], expected: float) -> None:
    assert compare.iqm(values) == pytest.approx(expected, rel=1e-14)


def test_bootstrap_interval_by_hand() -> None:
    assert compare.bootstrap_iqm_ci([7.0]) == (7.0, 7.0)  # one run: every resample is that run
    assert compare.bootstrap_iqm_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    # Two runs 0 and 1: a resample's IQM (its mean) is 0, 0.5 or 1 with chances 1/4, 1/2, 1/4,
    # so the 2.5% and 97.5% quantiles of 2,000 resamples are 0 and 1.
    assert compare.bootstrap_iqm_ci([1.0, 0.0]) == (0.0, 1.0)
    # Four runs 0..3: a resample's IQM is the mean of its middle two draws; both are 0 when 3 or
    # 4 of the 4 draws are 0, chance 13/256 (about 5%) > 2.5%, and likewise 3 at the top.
    assert compare.bootstrap_iqm_ci([3.0, 1.0, 0.0, 2.0]) == (0.0, 3.0)


def test_bootstrap_interval_is_the_percentile_interval_of_seeded_resamples() -> None:
    values = [0.3, 9.7, 1.1, 2.2, 5.5, 4.25, 8.0, 6.6, 3.3, 7.1]
    low, high = compare.bootstrap_iqm_ci(values, n_resamples=200, confidence=0.9, seed=3)
    # The same thing written out: draws from default_rng(seed) over the sorted values, the IQM
    # of each (2 of 10 dropped at each end), the 5% and 95% quantiles with linear interpolation.
    ordered = sorted(values)
    draws = np.random.default_rng(3).integers(0, 10, size=(200, 10))
    iqms = sorted(statistics.fmean(sorted(ordered[i] for i in row)[2:8]) for row in draws)

    def quantile(q: float) -> float:
        position = q * (len(iqms) - 1)
        below = math.floor(position)
        return iqms[below] + (position - below) * (iqms[below + 1] - iqms[below])

    assert (low, high) == pytest.approx((quantile(0.05), quantile(0.95)), rel=1e-12)
    assert low < compare.iqm(values) < high
    # Reproducible, independent of the order of the runs, and changed by the seed.
    assert compare.bootstrap_iqm_ci(values[::-1], n_resamples=200, confidence=0.9, seed=3) == (low, high)
    assert compare.bootstrap_iqm_ci(values, n_resamples=200, confidence=0.9, seed=4) != (low, high)
    # Same draws: the 50% interval lies inside the 95% one.
    narrow, wide = compare.bootstrap_iqm_ci(values, confidence=0.5), compare.bootstrap_iqm_ci(values)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
    assert all(math.isnan(v) for v in compare.bootstrap_iqm_ci([math.nan]))
    with pytest.raises(DaedalusError, match="n_resamples must be a whole number >= 1"):
        compare.bootstrap_iqm_ci(values, n_resamples=0)
    with pytest.raises(DaedalusError, match="confidence must be between 0 and 1"):
        compare.bootstrap_iqm_ci(values, confidence=95)


def test_trailing_mean_skips_missing_points() -> None:
    out = compare._trailing_mean(np.array([1.0, math.nan, 3.0, 5.0, 9.0]), 2)
    assert list(out[[0, 2, 3, 4]]) == [1.0, 3.0, 4.0, 7.0] and math.isnan(out[1])
    assert list(compare._trailing_mean(np.array([2.0, 4.0, 9.0]), 5)) == [2.0, 3.0, 5.0]


def _eval_run(folder: Path, points: list[tuple[int, float]]) -> str:
    folder.mkdir(parents=True)
    evaluations = [{"step": step, "mean_return": value, "train_seconds": step / 100} for step, value in points]
    (folder / "artifacts.json").write_text(json.dumps({"evaluations": evaluations}))
    return str(folder)


def test_plot_iqm_band_per_evaluation_step(tmp_path: Path) -> None:
    # Five runs evaluated at steps 100 and 200; the fifth stops before step 300.
    returns = [[10.0, 50.0, 90.0], [20.0, 60.0, 80.0], [30.0, 10.0, 70.0], [40.0, 70.0, 60.0], [500.0, 90.0]]
    paths = [_eval_run(tmp_path / f"run{i}", list(zip((100, 200, 300), r, strict=False))) for i, r in enumerate(returns)]
    row = compare.CompareRow(group="g", runs=5, final_mean=None, final_std=None, best_mean=None, best_std=None,
                             steps=300, wall_s=None, steps_per_s=None, run_paths=paths)
    figure = api.plot_comparison([row], tmp_path / "iqm.png", band="iqm", n_resamples=500, seed=1)
    (axes,) = figure.axes
    (line,) = axes.get_lines()
    assert line.get_label() == "g (5 runs)" and list(line.get_xdata()) == [100.0, 200.0, 300.0]
    # Step 100: 10, 20, 30, 40, 500, the middle three 20, 30, 40; step 200: 50, 60, 70. Step 300:
    # four runs, the middle two 70 and 80.
    assert list(line.get_ydata()) == [30.0, 60.0, 75.0]
    columns = [[r[i] for r in returns if i < len(r)] for i in range(3)]
    vertices = axes.collections[0].get_paths()[0].vertices
    for x, column in zip((100.0, 200.0, 300.0), columns, strict=True):
        band = sorted({float(y) for vx, y in vertices if vx == x})
        assert band == list(compare.bootstrap_iqm_ci(column, n_resamples=500, seed=1))
    assert axes.get_title() == "IQM over runs, 95% bootstrap CI (500 resamples)"
    assert (tmp_path / "iqm.png").stat().st_size > 10_000
    again = api.plot_comparison([row], tmp_path / "again.png", band="iqm", n_resamples=500, seed=1)
    assert (again.axes[0].collections[0].get_paths()[0].vertices == vertices).all()
    with pytest.raises(DaedalusError, match="--band must be 'std' or 'iqm', got 'median'"):
        api.plot_comparison([row], tmp_path / "x.png", band="median")
    with pytest.raises(DaedalusError, match=r"cannot write '\.bmpx' images"):
        api.plot_comparison([row], tmp_path / "x.bmpx")


# --------------------------------------------------------------------------- plots/ at the end of training


def test_write_run_plots_one_png_per_quantity(runs: Path) -> None:
    import matplotlib.image

    pyplot_before = "matplotlib.pyplot" in sys.modules
    run = sorted(runs.glob("small-*"))[0]
    paths = compare.write_run_plots(run)
    # PPO logs returns, evaluations, steps/s and losses, not episode lengths (the stepwise loop does).
    assert paths == [run / "plots" / name for name in ("returns.png", "losses.png", "steps_per_second.png")]
    for path in paths:
        image = matplotlib.image.imread(path)
        assert image.shape[1] >= 720 and image[..., :3].std() > 0.05
    assert pyplot_before or "matplotlib.pyplot" not in sys.modules  # no pyplot: no backend switch


def test_write_run_plots_from_a_stepwise_run_and_its_clear_errors(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    rows = [f"{10 * i},{i % 7},{i},," for i in range(1, 30)] + ["300,,,42.5,1.5"]
    (run / "metrics.csv").write_text("step,charts/episode_return,charts/episode_length,eval/mean_return,eval/std_return\n" + "\n".join(rows) + "\n")
    assert compare.write_run_plots(run, smooth=5) == [run / "plots" / "returns.png", run / "plots" / "length.png"]
    (run / "metrics.csv").write_text("step\n")
    assert compare.write_run_plots(run) == []  # nothing logged yet: nothing to draw, no error
    (run / "metrics.csv").write_text("step,loss/value\n1,0.5\n2,abc\n")
    with pytest.raises(DaedalusError, match=r"could not be drawn \(ValueError: could not convert string to float: 'abc'\)"):
        compare.write_run_plots(run)
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "metrics.csv").write_text("step,loss/value\n1,0.5\n2,0.25\n")
    (blocked / "plots").write_text("a file where the folder belongs")
    with pytest.raises(DaedalusError, match="plots/losses.png: the image cannot be written"):
        compare.write_run_plots(blocked)
    with pytest.raises(DaedalusError, match="no metrics.csv to plot"):
        compare.write_run_plots(tmp_path / "missing")
    with pytest.raises(DaedalusError, match="smooth must be a whole number >= 1"):
        compare.write_run_plots(run, smooth=0)


def test_plots_without_matplotlib_name_the_extra(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it raises ImportError
    run = sorted(runs.glob("small-*"))[0]
    with pytest.raises(MissingDependencyError, match=r"pip install 'daedalus\[plot\]'"):
        compare.write_run_plots(run)
    with pytest.raises(MissingDependencyError, match="matplotlib"):
        api.plot_run(run)


def test_training_draws_plots_into_the_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every finished run gets plots/ (the suite turns this off elsewhere with DAEDALUS_PLOTS=0)."""
    import matplotlib.image

    monkeypatch.setenv("DAEDALUS_PLOTS", "1")
    write(tmp_path / "p.yaml", PROFILES)
    (result,) = api.train_many(tmp_path / "p.yaml", ["small"], runs_dir=tmp_path / "runs")
    names = sorted(p.name for p in (result.path / "plots").iterdir())
    assert names == ["losses.png", "returns.png", "steps_per_second.png"]
    image = matplotlib.image.imread(result.path / "plots" / "returns.png")
    assert image[..., :3].std() > 0.05  # not blank
    monkeypatch.setenv("DAEDALUS_PLOTS", "0")
    (quiet,) = api.train_many(tmp_path / "p.yaml", ["small"], runs_dir=tmp_path / "runs")
    assert not (quiet.path / "plots").exists()


def test_cli_band_iqm(runs: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "daedalus", "runs", "compare", "--profile", "small", "--runs-dir", str(runs),
         "--plot", str(tmp_path / "iqm.png"), "--band", "iqm"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "iqm.png").stat().st_size > 10_000
    bad = subprocess.run(
        [sys.executable, "-m", "daedalus", "runs", "compare", "--profile", "small", "--runs-dir", str(runs),
         "--plot", str(tmp_path / "x.png"), "--band", "median"],
        capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 2 and "--band must be 'std' or 'iqm'" in bad.stderr
