"""Demonstrations: record them from a saved run, describe them, load them in any format.

- :func:`record_demos` is ``daedalus demos record``: a saved agent (built-in, stepwise or custom:
  anything :func:`~daedalus.api.runs.load_run` rebuilds that has ``predict`` or ``get_action``)
  plays N episodes on its run's env; episode ``i`` is reset with seed ``seed + i``.
- :func:`demos_info` / :func:`format_demos_info` are ``daedalus demos info``.
- :func:`load_demos` reads every format Daedalus knows (rl_framework's
  ``EpisodeSequence.from_dataset``): see :meth:`daedalus.demos.Demonstrations.from_dataset`.

The format is described in docs/demonstrations.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from daedalus.api.resolve import restores_torch_threads
from daedalus.api.runs import load_run
from daedalus.demos import Demonstrations, Episode, space_to_json
from daedalus.errors import DaedalusError

__all__ = ["demos_info", "format_demos_info", "load_demos", "record_demos"]


def load_demos(path: str | Path) -> Demonstrations:
    """Demonstrations from a Daedalus folder, an imitation / rl-zoo npz (or a folder of them) or a Minari dataset.

    The Python equivalent of rl_framework's ``EpisodeSequence.from_dataset(path)``; nothing is unpickled.
    """
    return Demonstrations.from_dataset(path)


@restores_torch_threads
def record_demos(
    run: str | Path,
    episodes: int,
    output: str | Path | None = None,
    *,
    seed: int = 0,
    deterministic: bool = True,
    checkpoint: str | None = None,
    runs_dir: str | Path | None = None,
    trust_code: bool = False,
    max_steps: int | None = None,
) -> Demonstrations:
    """Play ``episodes`` episodes of a saved run's agent and return (and, with ``output``, save) them.

    Episode ``i`` is reset with seed ``seed + i``, on one copy of the run's env (its wrappers
    applied), so the same arguments give the same demonstrations for a deterministic agent.
    ``deterministic`` is passed to ``predict`` (agents with only ``get_action`` act as they act).
    ``max_steps`` cuts endless episodes (counted as truncated). ``trust_code``: see
    :func:`~daedalus.api.runs.load_run`. ``info`` records the env id and arguments, the run and
    agent ids, the checkpoint, the seed and ``deterministic``.
    """
    from daedalus.evaluation import agent_policy
    from daedalus.rollout.source import SingleEnv, stack_observations

    if episodes < 1:
        raise DaedalusError(f"demos record: --episodes must be at least 1, got {episodes}.")
    loaded = load_run(run, checkpoint=checkpoint, runs_dir=runs_dir, trust_code=trust_code)
    resolved = loaded.resolved
    if resolved.groups is not None:
        raise DaedalusError(
            f"{loaded.path} is a multi-agent run; demonstrations hold one agent's episodes. Record a single-agent run."
        )
    policy = agent_policy(loaded.agent)
    player = SingleEnv(resolved.make_env(seed))
    recorded: list[Episode] = []
    try:
        for index in range(episodes):
            obs, _ = player.reset(seed=seed + index)
            observations, actions, rewards = [_numeric(obs, loaded.path)], [], []
            state: Any = None
            terminated = truncated = False
            while not (terminated or truncated):
                out = policy.act(stack_observations([obs]), state, deterministic=deterministic)
                state = out.state
                action = np.asarray(out.to_env())[0]
                obs, reward, terminated, truncated, _ = player.step(action)
                observations.append(_numeric(obs, loaded.path))
                actions.append(action)
                rewards.append(reward)
                if max_steps is not None and len(actions) >= max_steps:
                    truncated = True
            recorded.append(Episode(np.stack(observations), np.stack(actions), np.asarray(rewards, np.float32), terminated, truncated))
    finally:
        player.env.close()
    profile = loaded.profile
    info = {
        "env_id": profile.env_id, "env_args": dict(profile.env_args),
        "wrappers": [w.ref for w in profile.wrappers],
        "run_id": loaded.path.name, "run_path": str(loaded.path), "agent_id": profile.agent_id,
        "checkpoint": loaded.checkpoint, "seed": seed, "deterministic": deterministic,
    }
    demos = Demonstrations.from_episodes(recorded, resolved.observation_space, resolved.action_space, info)
    if output is not None:
        demos.save(output)
    return demos


def _numeric(obs: Any, run: Path) -> np.ndarray:
    array = np.asarray(obs)
    if array.dtype.kind not in "biuf":
        raise DaedalusError(
            f"{run}: the env's observations are {type(obs).__name__} ({array.dtype}); demonstrations hold numeric "
            "arrays. Add a wrapper that flattens them (e.g. FlattenObservation) to the profile."
        )
    return array


def demos_info(path: str | Path) -> dict[str, Any]:
    """What ``daedalus demos info`` prints: counts, returns, lengths, spaces and ``info``."""
    demos = load_demos(path)
    returns = demos.episode_returns
    lengths = demos.episode_lengths
    return {
        "path": str(path),
        "episodes": len(demos),
        "steps": demos.num_steps,
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "min_return": float(returns.min()),
        "max_return": float(returns.max()),
        "mean_length": float(lengths.mean()),
        "terminated": int(demos.terminated.sum()),
        "truncated": int(demos.truncated.sum()),
        "obs_shape": list(demos.obs.shape[1:]), "obs_dtype": str(demos.obs.dtype),
        "action_shape": list(demos.actions.shape[1:]), "action_dtype": str(demos.actions.dtype),
        "observation_space": space_to_json(demos.observation_space),
        "action_space": space_to_json(demos.action_space),
        "info": dict(demos.info),
    }


def format_demos_info(summary: dict[str, Any]) -> str:
    """:func:`demos_info` as lines for people."""
    def space(key: str, shape: str, dtype: str) -> str:
        data = summary[key]
        if isinstance(data, dict) and data.get("type") == "Discrete":
            return f"Discrete({data['n']})"
        if isinstance(data, dict) and data.get("type") == "Box":
            return f"Box(shape={tuple(data['shape'])}, dtype={data['dtype']})"
        return f"unknown (arrays {tuple(summary[shape])} {summary[dtype]})"

    lines = [
        f"demonstrations {summary['path']}",
        f"  episodes: {summary['episodes']} ({summary['terminated']} terminated, {summary['truncated']} truncated)",
        f"  steps: {summary['steps']} (mean length {summary['mean_length']:.1f})",
        f"  return: {summary['mean_return']:.2f} ± {summary['std_return']:.2f} (min {summary['min_return']:.2f}, max {summary['max_return']:.2f})",
        f"  observation space: {space('observation_space', 'obs_shape', 'obs_dtype')}",
        f"  action space: {space('action_space', 'action_shape', 'action_dtype')}",
    ]
    for key, value in summary["info"].items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)
