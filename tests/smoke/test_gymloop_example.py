"""examples/gymloop_style: Gym Loop's random agent on Pendulum, create-default then train (CLI)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gymloop_style"
# Runs the CLI and reports, at exit, whether anything imported torch.
RUNNER = (
    "import sys, atexit\n"
    "atexit.register(lambda: print('torch imported:', 'torch' in sys.modules, file=sys.stderr))\n"
    "from daedalus.cli import main\n"
    "main(sys.argv[1:])\n"
)


def daedalus(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess; fails the test on a non-zero exit or when torch was imported."""
    env = {**os.environ, "DAEDALUS_PROGRESS": "plain"}
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "torch imported: False" in result.stderr, result.stderr
    return result


def copy_example(tmp_path: Path) -> Path:
    return Path(
        shutil.copytree(
            EXAMPLE,
            tmp_path / "gymloop_style",
            ignore=shutil.ignore_patterns("runs", "__pycache__"),
        )
    )


def test_random_agent_on_pendulum_via_create_default_then_train(tmp_path: Path) -> None:
    pytest.importorskip("gymnasium")
    root = copy_example(tmp_path)
    daedalus(
        "create-default", "--agent", "random_agent.py:RandomAgent", "-o", "random.yaml", cwd=root
    )
    ((profile_id, profile),) = yaml.safe_load((root / "random.yaml").read_text()).items()
    assert profile["env_id"] == "Pendulum-v1" and profile["config"] == {}
    out = daedalus(
        "train",
        "random.yaml",
        "--set",
        "loop.max_episodes=3",
        "--set",
        "loop.eval_episodes=2",
        cwd=root,
    ).stdout
    assert "note: RandomAgent does not implement save()/load()" in out
    (run,) = (root / "runs").glob(f"{profile_id}-*")
    meta = json.loads((run / "run.json").read_text())
    assert (
        meta["status"] == "completed" and meta["steps"] == 600
    )  # 3 episodes of Pendulum's 200 steps
    assert meta["checkpoint_format"] == "none"
    # A random agent on Pendulum scores far below 0.
    assert meta["final_return"] < -100
    # Gym Loop's evaluate: the profile's agent without memorize/update.
    line = daedalus("evaluate", "random.yaml", "--episodes", "2", cwd=root).stdout
    assert "over 2 episodes" in line
