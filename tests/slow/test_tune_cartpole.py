"""``daedalus tune`` on CartPole PPO: 12 trials x 2 seeds, 2 at a time, then the best profile re-trained.

The search runs through the command (two spawned worker processes sharing the SQLite study);
the best profile it writes is trained again with ``python -m daedalus train``, and its final
evaluation must land within the best trial's seeds, on the value of the trial's first seed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from daedalus.api.tune import tune
from daedalus.cli.tune_cmd import register
from daedalus.runs.store import list_runs

pytest.importorskip("optuna")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tune_cartpole.yaml"
PROFILE = "cartpole_ppo_tune"


@pytest.mark.slow
def test_tune_cartpole_ppo_and_the_best_profile_reproduces_its_score(workdir: Path) -> None:
    app = typer.Typer(rich_markup_mode=None)
    register(app)
    app.command("noop")(lambda: None)  # two commands: 'tune' is a subcommand, as in the real app
    args = ["--trials", "12", "--seeds", "2", "--runs-dir", "runs"]
    out = CliRunner().invoke(app, ["tune", str(EXAMPLE), PROFILE, *args, "--parallel", "2"])
    assert out.exit_code == 0, out.output

    # Run again: the study is complete, so nothing trains and the result is read back.
    result = tune(EXAMPLE, PROFILE, trials=12, seeds=2, runs_dir="runs")
    assert result.ran == 0
    counts = result.counts()
    assert counts.get("complete", 0) + counts.get("pruned", 0) == 12, counts
    runs = list_runs(Path("runs"), batch_id=f"tune-{PROFILE}")
    for trial in result.trials:
        mine = sorted(r["run_id"] for r in runs if r["profile_id"] == f"{PROFILE}-t{trial.number}")
        assert mine == sorted(trial.run_ids) and len(mine) == (2 if trial.state == "complete" else len(mine))
        if trial.state == "pruned":  # the run it stopped says so
            stopped = json.loads(Path("runs", trial.run_ids[-1], "run.json").read_text())
            assert stopped["status"] == "completed" and stopped["stop_reason"].startswith("pruned by optuna (median pruner)")

    best = result.best
    assert best is not None and result.best_profile is not None
    # A random CartPole policy scores about 20; with a few good trials among 12, the best passes 250.
    assert best.value is not None and best.value >= 250, result.table(12)

    retrain = subprocess.run(
        [sys.executable, "-m", "daedalus", "train", str(result.best_profile), "--runs-dir", "again"],
        capture_output=True, text=True, timeout=300,
    )
    assert retrain.returncode == 0, retrain.stdout[-2000:] + retrain.stderr[-2000:]
    (run,) = list_runs(Path("again"))
    final = json.loads(Path(run["path"], "eval.json").read_text())["latest"]["mean_return"]
    low, high = min(best.seed_values), max(best.seed_values)
    assert low <= final <= high, (final, best.seed_values, best.value)
    assert final == pytest.approx(best.seed_values[0], abs=1e-6), "the best profile trains the trial's first seed"
