"""The profile's `rollout` section through the CLI: envs in a child process, native vectorization."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import write


def test_rollout_backends_through_the_cli(tmp_path: Path) -> None:
    write(tmp_path / "p.yaml", """
        ppo_subprocess:
          agent_id: ppo
          env_id: CartPole-v1
          num_envs: 4
          rollout: {backend: subprocess, vectorization: sync}
          config: {total_steps: 2048, num_steps: 64, eval_every_steps: 1024, eval_episodes: 2, final_eval_episodes: 2}
        dqn_subprocess:
          agent_id: dqn
          env_id: CartPole-v1
          rollout: {backend: subprocess}
          config: {total_steps: 1500, learning_starts: 500, eval_every_steps: 1000, eval_episodes: 2, final_eval_episodes: 2}
        random_native:
          agent_id: random
          env_id: CartPole-v1
          num_envs: 2
          rollout: {vectorization: native}
          config: {total_steps: 300}
    """)
    result = subprocess.run([sys.executable, "-m", "daedalus", "train", "p.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = {json.loads(p.read_text())["profile_id"]: json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/run.json")}
    assert {k: (v["status"], v["steps"]) for k, v in runs.items()} == {
        "ppo_subprocess": ("completed", 2048), "dqn_subprocess": ("completed", 1500), "random_native": ("completed", 300),
    }
    saved = (tmp_path / "runs" / runs["ppo_subprocess"]["run_id"] / "profile.yaml").read_text()
    assert "backend: subprocess" in saved and "vectorization: sync" in saved
