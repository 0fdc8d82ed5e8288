"""Tabular Q-learning (examples/gymloop_style) learns FrozenLake and Taxi through the CLI.

create-default writes the profile, the example's tuned values are put into it (every one
must be a key create-default wrote), ``train`` trains it and ``evaluate`` scores the saved
run, in subprocesses that must never import torch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gymloop_style"
RUNNER = (
    "import sys, atexit\n"
    "atexit.register(lambda: print('torch imported:', 'torch' in sys.modules, file=sys.stderr))\n"
    "from daedalus.cli import main\n"
    "main(sys.argv[1:])\n"
)


def daedalus(*args: str, cwd: Path) -> str:
    env = {**os.environ, "DAEDALUS_PROGRESS": "plain"}
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "torch imported: False" in result.stderr, result.stderr
    return result.stdout


def learn(
    tmp_path: Path, example_id: str, episodes: int
) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """create-default -> tuned values -> train -> evaluate RUN; returns (run.json, eval, root)."""
    root = Path(
        shutil.copytree(
            EXAMPLE, tmp_path / "example", ignore=shutil.ignore_patterns("runs", "__pycache__")
        )
    )
    tuned = yaml.safe_load((root / "profiles.yaml").read_text())[example_id]
    daedalus(
        "create-default",
        "--agent",
        tuned["agent_id"],
        "--env",
        tuned["env_id"],
        "-o",
        "run.yaml",
        cwd=root,
    )
    ((profile_id, profile),) = yaml.safe_load((root / "run.yaml").read_text()).items()
    for section in ("config", "loop"):
        assert set(tuned[section]) <= set(profile[section]), f"create-default lacks {section} keys"
        profile[section].update(tuned[section])
    profile["env_args"] = tuned.get("env_args", {})
    (root / "run.yaml").write_text(yaml.safe_dump({profile_id: profile}, sort_keys=False))
    daedalus("train", "run.yaml", cwd=root)
    (run,) = (root / "runs").glob(f"{profile_id}-*")
    # The agent is a file of the example, not a project module: evaluating its run needs trust.
    daedalus("evaluate", str(run), "--episodes", str(episodes), "--trust-code", cwd=root)
    meta = json.loads((run / "run.json").read_text())
    evaluation = json.loads((run / "eval.json").read_text())["latest"]
    return meta, evaluation, root


@pytest.mark.slow
def test_q_learning_solves_frozenlake(tmp_path: Path) -> None:
    meta, evaluation, root = learn(tmp_path, "frozenlake_q", episodes=20)
    assert meta["status"] == "completed" and meta["final_return"] == 1.0
    assert evaluation["mean_return"] == 1.0  # success rate 1.0 (reward 1 only at the goal)
    assert evaluation["mean_length"] == 6.0  # the shortest path on the 4x4 map
    # Gym Loop's evaluate on a profile pointed at the saved Q-table, without memorize/update.
    (run,) = (root / "runs").glob("*-*")
    profile = yaml.safe_load((root / "run.yaml").read_text())
    next(iter(profile.values()))["config"]["q_table_file"] = str(
        run / "checkpoints" / "final" / "agent.bin"
    )
    (root / "saved.yaml").write_text(yaml.safe_dump(profile))
    assert daedalus("evaluate", "saved.yaml", "--episodes", "5", cwd=root).startswith("1.00 ± 0.00")


@pytest.mark.slow
def test_q_learning_learns_taxi(tmp_path: Path) -> None:
    meta, evaluation, _ = learn(tmp_path, "taxi_q", episodes=100)
    assert meta["status"] == "completed"
    assert evaluation["mean_return"] >= 7.0, evaluation
