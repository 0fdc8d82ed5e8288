"""Every multi-agent example (examples/multiagent/*.yaml) trains briefly through the CLI, then
`daedalus evaluate` reports the team return, each policy's and each agent's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("mpe2")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "multiagent"
PROFILES = [
    (path.name, profile_id)
    for path in sorted(EXAMPLES.glob("*.yaml"))
    for profile_id in yaml.safe_load(path.read_text())
    if profile_id != "defaults"
]


def daedalus(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DAEDALUS_PROGRESS": "plain"}
    return subprocess.run([sys.executable, "-m", "daedalus", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_examples_are_there() -> None:
    assert {"simple_spread.yaml", "simple_tag.yaml"} <= {name for name, _ in PROFILES}


@pytest.mark.parametrize(("file", "profile_id"), PROFILES)
def test_multiagent_example_trains_and_evaluates(tmp_path: Path, file: str, profile_id: str) -> None:
    result = daedalus(
        "train", str(EXAMPLES / file), profile_id, "--runs-dir", "runs",
        "--set", "total_steps=400", "--set", "num_steps=50", "--set", "eval_every_steps=0",
        "--set", "final_eval_episodes=2", "--set", "checkpoint_every_steps=0",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["final_return"] is not None
    assert (run / "checkpoints" / "final" / "weights.safetensors").is_file()
    evaluated = daedalus("evaluate", str(run), "--episodes", "2", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "team return" in evaluated.stdout and "over 2 episodes" in evaluated.stdout
    latest = json.loads((run / "eval.json").read_text())["latest"]
    assert latest["episodes"] == 2 and latest["agents"]
