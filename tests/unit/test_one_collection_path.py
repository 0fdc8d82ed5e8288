"""One collection path: envs are stepped only inside ``daedalus.rollout`` (and ``daedalus.envs``)."""

from __future__ import annotations

import ast
from pathlib import Path

import daedalus
from tests.conftest import write

PACKAGE = Path(daedalus.__file__).parent
ALLOWED = ("rollout", "envs")


def _stepping_calls(path: Path, root: Path = PACKAGE) -> list[str]:
    """``X.step(`` / ``X.reset(`` calls on a name or attribute called ``env`` or ``envs``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("step", "reset"):
            target = node.func.value
            name = target.id if isinstance(target, ast.Name) else target.attr if isinstance(target, ast.Attribute) else ""
            if name in ("env", "envs", "vec_env", "vector_env"):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {name}.{node.func.attr}(")
    return found


def test_envs_are_stepped_only_under_rollout_and_envs() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] in ALLOWED:
            continue
        offenders += _stepping_calls(path)
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.relative_to(PACKAGE)}: text '{t}'" for t in ("env.step(", "env.reset(") if t in text]
    assert offenders == []


def test_the_scan_finds_a_stepping_call(tmp_path: Path) -> None:
    sample = write(tmp_path / "loop.py", "def run(env, envs):\n    env.reset(seed=0)\n    self.envs.step(1)\n")
    assert [line.split(": ")[1] for line in _stepping_calls(sample, tmp_path)] == ["env.reset(", "envs.step("]


def test_random_agent_honours_num_envs(workdir: Path) -> None:
    result = daedalus.train(agent_id="random", env_id="CartPole-v1", num_envs=4, config={"total_steps": 400}, runs_dir=workdir / "runs")
    assert result.status == "completed" and result.steps == 400
    returns = result.artifacts["episode_returns"]
    # 400 steps over 4 copies of CartPole under random actions (~22 steps per episode): many episodes.
    assert len(returns) >= 8 and all(r >= 1 for r in returns)
    # The same seed gives the same episodes.
    again = daedalus.train(agent_id="random", env_id="CartPole-v1", num_envs=4, config={"total_steps": 400}, runs_dir=workdir / "runs")
    assert again.artifacts["episode_returns"] == returns
