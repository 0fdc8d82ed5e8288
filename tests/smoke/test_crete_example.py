"""examples/crete_style end to end through the CLI, the way the Crete README uses it.

module add -> list agents -> train one profile (with --set) -> batch every profile, then every
run folder is reloaded twice (``daedalus.load_run`` and the agent's own ``load()`` on
``checkpoints/final/agent.bin``) and both must reproduce, exactly, the greedy evaluation
returns the training wrapper recorded for the weights it saved.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("torch")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "crete_style"
SCRIPT = Path(sys.executable).with_name("daedalus")
# Short runs: 300 steps, an evaluation every 100 steps (so three evaluations per run).
FAST = ["--set", "total_steps=300", "--set", "decay_steps=200", "--set", "eval_freq=100", "--set", "gather_freq=50"]
FIXED_OBS = [[0.0, 0.0, 0.0, 0.0], [0.05, -0.2, 0.03, 0.4], [-1.0, 0.5, -0.2, -0.5], [2.0, 1.0, 0.2, 1.5]]


def daedalus(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the installed console script (not ``python -m``, which would put the cwd on sys.path)."""
    cmd = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "daedalus"]
    env = {**os.environ, "DAEDALUS_PROGRESS": "plain"}
    return subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def copy_example(dest: Path) -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("runs", ".daedalus.yaml", "__pycache__"))
    return dest


def run_folders(runs_dir: Path) -> list[Path]:
    return sorted(p for p in runs_dir.iterdir() if (p / "run.json").is_file())


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example with module_a added, one `train` and one `batch` done."""
    root = copy_example(tmp_path_factory.mktemp("crete") / "crete_style")
    ok(daedalus("module", "add", "module_a", cwd=root))
    ok(daedalus("train", "crete_profile.yaml", "final_dqn_map_0", "--runs-dir", "runs_train", *FAST, cwd=root))
    batch = ok(daedalus("batch", "crete_profile.yaml", "--runs-dir", "runs_batch", *FAST, cwd=root))
    (root / "batch_stdout.txt").write_text(batch.stdout)
    return root


@pytest.fixture(scope="module")
def module_a(project: Path) -> Iterator[ModuleType]:
    """The project's module imported in this process (load_run needs the DQN id registered)."""
    from daedalus import registry

    sys.path.insert(0, str(project))
    try:
        yield importlib.import_module("module_a")
    finally:
        sys.path.remove(str(project))
        for name in [n for n in sys.modules if n == "module_a" or n.startswith("module_a.")]:
            del sys.modules[name]
        registry._AGENTS.pop("DQN", None)  # keep the global registry as other tests expect it


def test_module_add_records_the_module(project: Path) -> None:
    data = (project / ".daedalus.yaml").read_text()
    assert "module_a" in data
    listed = ok(daedalus("module", "list", cwd=project)).stdout
    assert str(project / ".daedalus.yaml") in listed
    assert "module_a" in listed.splitlines()


def test_list_agents_shows_dqn(project: Path) -> None:
    out = ok(daedalus("list", "agents", "--filter", "DQN", cwd=project)).stdout
    assert "DQN" in out
    assert "replay buffer" in out  # the description is the wrapper's docstring
    assert "random" not in out.split()  # --filter applies


def test_train_writes_a_complete_run_folder(project: Path) -> None:
    (run,) = run_folders(project / "runs_train")
    meta = json.loads((run / "run.json").read_text())
    assert (meta["status"], meta["agent_id"], meta["env_id"], meta["steps"]) == ("completed", "DQN", "CartPole-v1", 300)
    profile = (run / "profile.yaml").read_text()
    assert "total_steps: 300" in profile and "init_epsilon: 1" in profile  # --set applied, defaults merged
    for name in ("final", "best"):
        checkpoint_meta = json.loads((run / "checkpoints" / name / "meta.json").read_text())
        assert checkpoint_meta["format"] == "bytes"
        assert (run / "checkpoints" / name / "agent.bin").stat().st_size > 0
    artifacts = json.loads((run / "artifacts.json").read_text())
    loss_steps = [step for step, _ in artifacts["loss"]]
    assert loss_steps == sorted(loss_steps) and len(loss_steps) >= 4
    assert all(loss >= 0 for _, loss in artifacts["loss"])
    assert [e["step"] for e in artifacts["evaluations"]] == [100, 200, 300]
    assert meta["best_return"] == max(e["mean_return"] for e in artifacts["evaluations"])


def test_batch_trains_every_profile(project: Path) -> None:
    runs = run_folders(project / "runs_batch")
    metas = [json.loads((r / "run.json").read_text()) for r in runs]
    assert sorted(m["profile_id"] for m in metas) == ["final_dqn_map_0", "small_dqn_map_1"]
    assert {m["status"] for m in metas} == {"completed"}
    assert len({m["batch_id"] for m in metas}) == 1 and metas[0]["batch_id"]
    summary = (project / "batch_stdout.txt").read_text()
    assert "final_dqn_map_0" in summary and "small_dqn_map_1" in summary


def _evaluate(module_a: ModuleType, agent: Any, run: Path) -> list[float]:
    """Greedy returns of ``agent`` on the evaluation seeds the wrapper used."""
    import gymnasium as gym

    from daedalus import ProfileConfig

    config = ProfileConfig(json.loads(json.dumps(_resolved_config(run))))
    seeds = module_a.dqn_agent.eval_seeds(config)
    return module_a.dqn_agent.evaluate_greedy(agent, lambda seed: gym.make("CartPole-v1"), seeds)


def _resolved_config(run: Path) -> dict[str, Any]:
    import yaml

    (profile,) = yaml.safe_load((run / "profile.yaml").read_text()).values()
    return profile["config"]


@pytest.mark.parametrize("runs_dir", ["runs_train", "runs_batch"])
def test_every_run_reloads_and_acts_like_the_trained_agent(project: Path, module_a: ModuleType, runs_dir: str) -> None:
    import daedalus

    for run in run_folders(project / runs_dir):
        artifacts = json.loads((run / "artifacts.json").read_text())
        hidden_layers = _resolved_config(run)["hidden_layers"]

        loaded = daedalus.load_run(run)
        assert loaded.checkpoint == "final" and loaded.meta["status"] == "completed"
        assert isinstance(loaded.agent, module_a.DQNAgent)
        # The layers travel inside save()'s bytes: the factory alone would build the default (64, 64).
        assert loaded.agent.net.hidden_layers == hidden_layers

        own = module_a.DQNAgent(obs=(4,), n_actions=2)
        own.load((run / "checkpoints" / "final" / "agent.bin").read_bytes())
        assert own.net.hidden_layers == hidden_layers
        q_loaded, q_own = loaded.agent.q_values(FIXED_OBS), own.q_values(FIXED_OBS)
        assert q_loaded.tolist() == q_own.tolist()
        assert [loaded.agent.get_action(o)[0] for o in FIXED_OBS] == [own.get_action(o)[0] for o in FIXED_OBS]

        # The final checkpoint holds the weights the wrapper evaluated last: same greedy returns.
        assert _evaluate(module_a, own, run) == artifacts["final_evaluation"]["returns"]
        # The "best" snapshot (saved by the wrapper at its peak) reproduces the best evaluation.
        best = daedalus.load_run(run, checkpoint="best")
        assert best.checkpoint == "best"
        best_eval = max(artifacts["evaluations"], key=lambda e: e["mean_return"])
        assert _evaluate(module_a, best.agent, run) == best_eval["returns"]


def test_load_run_from_the_project_folder_finds_registered_agents(project: Path) -> None:
    (run,) = run_folders(project / "runs_train")
    code = f"import daedalus; print(type(daedalus.load_run({str(run)!r}).agent).__name__)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "DQNAgent"


def test_module_remove_unregisters_the_agent(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "crete_style")
    ok(daedalus("module", "add", "module_a", cwd=root))
    out = ok(daedalus("module", "remove", "module_a", cwd=root)).stdout
    assert "removed 'module_a'" in out
    assert "module_a" not in ok(daedalus("module", "list", cwd=root)).stdout.splitlines()
    ids = [line.split()[0] for line in ok(daedalus("list", "agents", cwd=root)).stdout.splitlines() if line.strip()]
    assert "DQN" not in ids and "dqn" in ids  # the built-in dqn stays
    failed = daedalus("train", "crete_profile.yaml", "final_dqn_map_0", "--runs-dir", "runs", cwd=root)
    assert failed.returncode == 2
    assert "unknown agent 'DQN'" in failed.stderr and "crete_profile.yaml:" in failed.stderr
    assert not (root / "runs").exists()  # validation fails before any run folder is made
    again = daedalus("module", "remove", "module_a", cwd=root)
    assert again.returncode == 2 and "not listed" in again.stderr
