"""Demonstrations and behaviour cloning through the command line, on the session's PPO CartPole expert:
``demos record`` → ``demos info`` → ``train`` a ``bc`` profile on the recording → ``evaluate`` the result."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import write


def daedalus(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """The command line in a subprocess, in ``cwd``."""
    env = {**os.environ, "DAEDALUS_PROGRESS": "plain"}
    return subprocess.run([sys.executable, "-m", "daedalus", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def test_record_info_bc_evaluate(cartpole_expert: Path, workdir: Path) -> None:
    recorded = ok(daedalus("demos", "record", str(cartpole_expert), "--episodes", "3", "-o", "demos/cartpole", "--seed", "5", cwd=workdir))
    assert "recorded 3 episodes, 1500 steps, return 500.00 ± 0.00" in recorded.stdout
    meta = json.loads((workdir / "demos" / "cartpole" / "demos.json").read_text())
    assert meta["info"]["env_id"] == "CartPole-v1" and meta["info"]["seed"] == 5 and meta["info"]["deterministic"] is True
    assert meta["info"]["agent_id"] == "ppo" and meta["info"]["run_id"] == cartpole_expert.name

    info = ok(daedalus("demos", "info", "demos/cartpole", cwd=workdir)).stdout
    for expected in ("episodes: 3", "steps: 1500", "return: 500.00 ± 0.00", "action space: Discrete(2)", "env_id: CartPole-v1", "seed: 5"):
        assert expected in info, info

    # The profile lives in its own folder: `demos` is relative to it.
    write(workdir / "profiles" / "bc.yaml", """
        bc_cartpole:
          agent_id: bc
          env_id: CartPole-v1
          seed: 0
          config:
            demos: ../demos/cartpole
            total_steps: 300
            log_every_steps: 100
            eval_every_steps: 0
            final_eval_episodes: 3
    """)
    ok(daedalus("train", "profiles/bc.yaml", cwd=workdir))
    (run,) = (workdir / "runs").glob("bc_cartpole-*")
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "completed" and meta["agent_id"] == "bc"
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {"bc/loss", "bc/neglogp", "bc/entropy", "bc/l2", "bc/accuracy"} <= set(rows[0])
    assert [int(r["step"]) for r in rows if r.get("bc/loss")][-1] == 300  # steps are gradient steps

    evaluated = ok(daedalus("evaluate", str(run), "--episodes", "3", cwd=workdir)).stdout
    assert "over 3 episodes (deterministic)" in evaluated


def test_record_refuses_a_missing_run_and_bc_needs_demos(workdir: Path) -> None:
    result = daedalus("demos", "record", "no-such-run", "-o", "out", cwd=workdir)
    assert result.returncode == 2 and "no run 'no-such-run'" in result.stderr
    write(workdir / "bc.yaml", "bc_cartpole:\n  agent_id: bc\n  env_id: CartPole-v1\n  config: {total_steps: 10}\n")
    result = daedalus("train", "bc.yaml", cwd=workdir)
    assert result.returncode == 2 and "config.demos is not set" in result.stderr and "daedalus demos record" in result.stderr


def test_dagger_refuses_an_expert_of_another_env(cartpole_expert: Path, workdir: Path) -> None:
    import daedalus as dd

    result = dd.train(agent_id="dagger", env_id="Acrobot-v1", config={"expert": str(cartpole_expert)}, runs_dir=workdir / "runs")
    assert result.status == "failed" and result.steps == 0
    assert "trained on CartPole-v1 {}, but this run's env is Acrobot-v1" in str(result.error)


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "imitation"


def test_imitation_examples_train(cartpole_expert: Path, workdir: Path) -> None:
    import daedalus as dd
    from daedalus.api.demos import record_demos

    record_demos(cartpole_expert, 2, workdir / "demos", seed=0)
    short = ["--set", "eval_every_steps=0", "--set", "final_eval_episodes=2", "--runs-dir", "runs"]
    ok(daedalus("train", str(EXAMPLES / "bc_cartpole.yaml"), "--set", f"config.demos={workdir / 'demos'}", "--set", "total_steps=200", *short, cwd=workdir))
    ok(daedalus(
        "train", str(EXAMPLES / "dagger_cartpole.yaml"), "--set", f"config.expert={cartpole_expert}",
        "--set", "config.total_expert_labels=300", "--set", "config.updates_per_round=20", *short, cwd=workdir,
    ))
    for name in ("gail_cartpole", "airl_cartpole"):
        ok(daedalus("train", str(EXAMPLES / f"{name}.yaml"), "--set", f"config.demos={workdir / 'demos'}", "--set", "total_steps=512", "--set", "config.num_episodes=2", *short, cwd=workdir))
    # Pendulum demonstrations from a random agent's run: the example only has to run
    random_run = dd.train(agent_id="random", env_id="Pendulum-v1", config={"total_steps": 400}, runs_dir=workdir / "random")
    record_demos(random_run.path, 2, workdir / "pendulum_demos", seed=0)
    ok(daedalus(
        "train", str(EXAMPLES / "gail_pendulum.yaml"), "--set", f"config.demos={workdir / 'pendulum_demos'}",
        "--set", "total_steps=8192", "--set", "checkpoint_every_steps=0", *short, cwd=workdir,
    ))
    records = {p.parent.name.split("-")[0]: json.loads(p.read_text()) for p in (workdir / "runs").glob("*/run.json")}
    assert records["bc_cartpole"]["status"] == "completed" and records["bc_cartpole"]["steps"] == 200
    assert records["dagger_cartpole"]["status"] == "completed" and records["dagger_cartpole"]["steps"] == 300
    assert records["gail_cartpole"]["status"] == "completed" and records["gail_cartpole"]["steps"] == 512
    assert records["airl_cartpole"]["status"] == "completed" and records["airl_cartpole"]["steps"] == 512
    assert records["gail_pendulum"]["status"] == "completed" and records["gail_pendulum"]["steps"] == 8192
