"""Every example profile of examples/*.yaml trains briefly through the CLI, then evaluates.

Checks the whole path a user takes: `daedalus train FILE --set total_steps=...`, a run folder
with every file of the documented layout, then `daedalus evaluate RUN`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PROFILES = [
    (path.name, profile_id)
    for path in sorted(EXAMPLES.glob("*.yaml"))
    for profile_id in yaml.safe_load(path.read_text())
    if profile_id != "defaults"
]


def daedalus(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DAEDALUS_PROGRESS": "plain"}
    return subprocess.run([sys.executable, "-m", "daedalus", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_every_example_is_covered() -> None:
    names = {name for name, _ in PROFILES}
    assert {"cartpole.yaml", "pendulum.yaml", "lunarlander.yaml", "a2c_cartpole.yaml"} <= names


@pytest.mark.parametrize(("file", "profile_id"), PROFILES)
def test_example_trains_and_evaluates(tmp_path: Path, file: str, profile_id: str) -> None:
    result = daedalus(
        "train", str(EXAMPLES / file), profile_id, "--runs-dir", "runs",
        "--set", "total_steps=300", "--set", "eval_every_steps=0", "--set", "final_eval_episodes=2",
        "--set", "checkpoint_every_steps=0",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["steps"] >= 300
    assert record["final_return"] is not None
    for name in ("profile.yaml", "metrics.csv", "artifacts.json", "eval.json", "checkpoints/final/meta.json"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "final" / "weights.safetensors").is_file()
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert "time/env" in (run / "metrics.csv").read_text().splitlines()[0]

    evaluated = daedalus("evaluate", str(run), "--episodes", "2", "--seed", "7", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "over 2 episodes (deterministic)" in evaluated.stdout
    history = json.loads((run / "eval.json").read_text())["history"]
    assert history[-1]["seed"] == 7 and history[-1]["n_episodes"] == 2
