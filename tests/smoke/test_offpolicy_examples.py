"""Every off-policy example profile trains a few hundred steps through the real CLI, checkpoints,
evaluates, and can be resumed; ``daedalus describe agent`` lists each config's fields."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("daedalus")


def daedalus(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "daedalus"]
    env = {**os.environ, "DAEDALUS_PROGRESS": "plain"}
    result = subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


@pytest.mark.parametrize(
    ("example", "agent_id", "extra"),
    [
        ("dqn_cartpole.yaml", "dqn", ["--set", "learning_starts=100", "--set", "train_frequency_steps=100", "--set", "gradient_steps=4"]),
        ("sac_pendulum.yaml", "sac", []),
        # learning_starts 1000 would leave 300 steps without a single update.
        ("td3_pendulum.yaml", "td3", ["--set", "learning_starts=100"]),
    ],
)
def test_example_trains_through_the_cli(example: str, agent_id: str, extra: list[str], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    daedalus("train", str(ROOT / "examples" / example), "--set", "total_steps=300", *extra, "--runs-dir", str(runs), cwd=tmp_path)
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "completed" and meta["agent_id"] == agent_id
    artifacts = json.loads((run / "artifacts.json").read_text())
    assert artifacts["time_split"]["steps"] == 300 and artifacts["time_split"]["learn"] > 0
    assert {"step", "mean_return", "std_return", "train_seconds"} <= set(artifacts["evaluations"][-1])
    assert artifacts["final_evaluation"]["n_episodes"] == 20
    assert (run / "checkpoints" / "final" / "weights.safetensors").is_file()
    state = json.loads((run / "checkpoints" / "final" / "state.json").read_text())
    assert state["algo"] == agent_id and state["counters"]["global_step"] == 300 and "rng" in state
    assert "charts/steps_per_second" in (run / "metrics.csv").read_text().splitlines()[0]


def test_describe_lists_the_config_fields(tmp_path: Path) -> None:
    out = daedalus("describe", "agent", "sac", cwd=tmp_path).stdout
    assert "autotune_entropy" in out and "final_eval_episodes" in out and "save_buffer" in out
    assert "dqn" in daedalus("list", "agents", cwd=tmp_path).stdout
