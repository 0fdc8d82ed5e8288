"""``daedalus runs compare``: rows per profile with numbers taken from the runs themselves."""

from __future__ import annotations

import csv
import io
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from daedalus import api
from daedalus.errors import DaedalusError
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
