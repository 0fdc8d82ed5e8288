"""Exact resume through the CLI: ``daedalus train`` stopped by SIGTERM or killed by SIGKILL, then
``daedalus resume``, ends with weights bit-identical to the same profile trained in one go.

For PPO (CartPole-v1, 4 envs), DQN (CartPole-v1, 2 envs, replay buffer saved) and SAC
(Pendulum-v1, replay buffer saved), on the CPU:

- SIGTERM once a periodic snapshot exists: training stops after the current update, the run is
  ``interrupted`` (exit 130), and the resume continues from its ``final`` checkpoint;
- SIGKILL once two snapshots exist: nothing is saved on the way out (the run is ``crashed``);
  the resume continues from the newest snapshot, and whatever the killed process wrote after it
  (env journal records, metric rows, TensorBoard events) is dropped.

Each resumed run's metrics.csv has the uninterrupted run's log steps, none missing, none
twice. About a minute in all on a 2-core CPU.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import write

pytestmark = pytest.mark.slow

SCRIPT = Path(sys.executable).with_name("daedalus")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "daedalus"]

PROFILES = """
ppo:
  agent_id: ppo
  env_id: CartPole-v1
  num_envs: 4
  seed: 3
  config: {total_steps: 40960, num_steps: 64, eval_every_steps: 8192, eval_episodes: 3,
           checkpoint_every_steps: 2048, keep_last: 50, log_every_steps: 1024, torch_threads: 1,
           final_eval_episodes: 0, normalize_obs: true}
dqn:
  agent_id: dqn
  env_id: CartPole-v1
  num_envs: 2
  seed: 5
  config: {total_steps: 10000, learning_starts: 1000, train_frequency_steps: 64, gradient_steps: 16,
           eval_every_steps: 2000, eval_episodes: 2, checkpoint_every_steps: 500, keep_last: 50,
           log_every_steps: 250, save_buffer: true, torch_threads: 1, final_eval_episodes: 0}
sac:
  agent_id: sac
  env_id: Pendulum-v1
  num_envs: 1
  seed: 7
  config: {total_steps: 2400, learning_starts: 200, eval_every_steps: 800, eval_episodes: 1,
           checkpoint_every_steps: 200, keep_last: 50, log_every_steps: 100, save_buffer: true,
           torch_threads: 1, final_eval_episodes: 0}
"""


def daedalus(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*COMMAND, *args], cwd=root, capture_output=True, text=True, timeout=300,
        env={**os.environ, "DAEDALUS_PROGRESS": "plain"},
    )
    if check and result.returncode != 0:
        pytest.fail(f"daedalus {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def only_run(runs_dir: Path) -> Path:
    (run,) = [p.parent for p in runs_dir.glob("*/run.json")]
    return run


def snapshots(runs_dir: Path) -> list[Path]:
    return sorted(runs_dir.glob("*/checkpoints/step-*/session.json"))


def interrupt(root: Path, profile: str, runs_dir: str, sig: int, after_snapshots: int) -> tuple[int, str]:
    """Start ``daedalus train``, wait for ``after_snapshots`` periodic snapshots, send ``sig``."""
    log = open(root / f"{runs_dir}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*COMMAND, "train", "p.yaml", profile, "--runs-dir", runs_dir], cwd=root, stdout=log,
        stderr=subprocess.STDOUT, env={**os.environ, "DAEDALUS_PROGRESS": "plain"},
    )
    try:
        deadline = time.monotonic() + 120
        while len(snapshots(root / runs_dir)) < after_snapshots:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no {after_snapshots} snapshots before the run ended:\n{(root / f'{runs_dir}.log').read_text()}")
            time.sleep(0.01)
        proc.send_signal(sig)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    return code, (root / f"{runs_dir}.log").read_text()


def logged_steps(run: Path) -> list[int]:
    with open(run / "metrics.csv", newline="") as handle:
        return [int(r["step"]) for r in csv.DictReader(handle) if r.get("charts/steps_per_second")]


def assert_same_weights(a: Path, b: Path) -> None:
    left = load_file(str(a / "checkpoints/final/weights.safetensors"))
    right = load_file(str(b / "checkpoints/final/weights.safetensors"))
    assert left.keys() == right.keys()
    different = [key for key in left if not torch.equal(left[key], right[key])]
    assert not different, f"tensors differ after the resume: {different}"


@pytest.fixture(scope="module", params=["ppo", "dqn", "sac"])
def one_go(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    """The profile trained without interruption (shared by the SIGTERM and SIGKILL cases)."""
    root = tmp_path_factory.mktemp(request.param)
    write(root / "p.yaml", PROFILES)
    daedalus(root, "train", "p.yaml", request.param, "--runs-dir", "whole")
    return request.param, root, only_run(root / "whole")


def test_sigterm_then_resume_matches_one_go(one_go: tuple[str, Path, Path]) -> None:
    profile, root, whole = one_go
    code, output = interrupt(root, profile, "term", signal.SIGTERM, after_snapshots=2)
    assert code == 130, output
    run = only_run(root / "term")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "interrupted"
    stopped_at = record["steps"]
    daedalus(root, "resume", run.name, "--runs-dir", "term")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["resumes"][0]["from_checkpoint"] == "final" and record["resumes"][0]["at_step"] == stopped_at
    assert record["resumes"][0]["exact"] is True
    assert_same_weights(whole, run)
    assert logged_steps(run) == logged_steps(whole)


def test_sigkill_then_resume_from_the_last_snapshot_matches_one_go(one_go: tuple[str, Path, Path]) -> None:
    profile, root, whole = one_go
    code, output = interrupt(root, profile, "kill", signal.SIGKILL, after_snapshots=3)
    assert code == -signal.SIGKILL, output
    run = only_run(root / "kill")
    newest = max(int(p.parent.name.split("-")[1]) for p in snapshots(root / "kill"))
    assert "status: crashed" in daedalus(root, "runs", "show", run.name, "--runs-dir", "kill").stdout
    daedalus(root, "resume", run.name, "--runs-dir", "kill")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed"
    resumed = record["resumes"][0]
    assert resumed["at_step"] == newest and resumed["exact"] is True
    assert_same_weights(whole, run)
    assert logged_steps(run) == logged_steps(whole)
