"""Evaluating agents: returns over a fixed number of episodes, and videos of episodes.

Episode ``i`` of an evaluation is always reset with seed ``seed + i``, so the set of
episodes does not depend on how they are run. Agents with a batched
``predict(obs_batch, deterministic)`` (every :class:`~daedalus.agents.base.TensorAgent`)
step several envs in lockstep with one forward pass per step; other agents are asked
``get_action(obs, extra_state)`` one env and one step at a time.

With a seed, evaluation is reproducible and leaves the caller's random state alone: the
global ``random``, NumPy and (already imported) torch generators are seeded for the
evaluation and restored afterwards, so evaluating in the middle of training does not
change the training run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import statistics
import sys
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daedalus.agents.base import Agent, TensorAgent
from daedalus.errors import DaedalusError, MissingDependencyError
from daedalus.rollout.contract import Policy
from daedalus.rollout.policies import GetActionPolicy, PredictPolicy
from daedalus.rollout.source import play_episodes

if TYPE_CHECKING:

    from daedalus.types import EnvFactory

__all__ = ["EvalResult", "evaluate", "record_video"]



@dataclass(frozen=True)
class EvalResult:
    """Returns and lengths of the evaluated episodes, in episode (seed) order.

    ``returns[i]`` and ``lengths[i]`` belong to the episode reset with seed ``seed + i``
    (or an unseeded reset when ``seed`` is ``None``). ``std_return`` is the population
    standard deviation, as Stable-Baselines3's ``evaluate_policy`` reports it.
    """

    returns: list[float]
    lengths: list[int]
    deterministic: bool
    seed: int | None = None

    @property
    def n_episodes(self) -> int:
        """How many episodes were evaluated."""
        return len(self.returns)

    @property
    def mean_return(self) -> float:
        """Mean undiscounted episode return."""
        return math.fsum(self.returns) / len(self.returns) if self.returns else math.nan

    @property
    def std_return(self) -> float:
        """Population standard deviation of the episode returns."""
        return statistics.pstdev(self.returns) if self.returns else math.nan

    @property
    def min_return(self) -> float:
        """Lowest episode return."""
        return min(self.returns) if self.returns else math.nan

    @property
    def max_return(self) -> float:
        """Highest episode return."""
        return max(self.returns) if self.returns else math.nan

    @property
    def mean_length(self) -> float:
        """Mean episode length in env steps."""
        return sum(self.lengths) / len(self.lengths) if self.lengths else math.nan

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable summary plus the per-episode values (the content of ``eval.json``)."""
        return {
            "n_episodes": self.n_episodes,
            "mean_return": self.mean_return,
            "std_return": self.std_return,
            "min_return": self.min_return,
            "max_return": self.max_return,
            "mean_length": self.mean_length,
            "deterministic": self.deterministic,
            "seed": self.seed,
            "returns": list(self.returns),
            "lengths": list(self.lengths),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        """Inverse of :meth:`to_dict` (the summary statistics are recomputed, not read)."""
        return cls(
            returns=[float(r) for r in data["returns"]],
            lengths=[int(n) for n in data["lengths"]],
            deterministic=bool(data["deterministic"]),
            seed=data.get("seed"),
        )

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def format(self) -> str:
        """One line for people, e.g. ``"21.50 ± 3.20 (min 15.00, max 27.00), mean length 200.0"``."""
        mode = "deterministic" if self.deterministic else "stochastic"
        return (
            f"{self.mean_return:.2f} ± {self.std_return:.2f} "
            f"(min {self.min_return:.2f}, max {self.max_return:.2f}), "
            f"mean length {self.mean_length:.1f} over {self.n_episodes} episodes ({mode})"
        )


def evaluate(
    agent: Agent,
    env_factory: EnvFactory,
    n_episodes: int = 10,
    deterministic: bool = True,
    seed: int | None = None,
    max_steps: int | None = None,
    render: bool = False,
    num_envs: int | None = None,
) -> EvalResult:
    """Run exactly ``n_episodes`` episodes and report their returns and lengths.

    Args:
        agent: The policy. If it has a batched ``predict(obs_batch, deterministic)``
            (a :class:`~daedalus.agents.base.TensorAgent`), up to ``num_envs`` envs run in
            lockstep with one forward pass per step. Otherwise ``get_action(obs,
            extra_state)`` is called per step, with ``extra_state`` starting at ``None``
            every episode.
        env_factory: ``env_factory(seed)`` returns one new Gymnasium env.
        n_episodes: Number of episodes, all run to the end (termination, truncation or
            ``max_steps``): no episode is dropped for being slow, so long episodes are not
            under-represented.
        deterministic: Passed to ``predict``. A plain :class:`Agent` has no such switch:
            it acts however its ``get_action`` acts, and the flag is only recorded.
        seed: Episode ``i`` is reset with seed ``seed + i``; the global RNGs are seeded
            for the evaluation and restored afterwards. ``None``: unseeded resets.
        max_steps: Cut episodes after this many steps (counted as ended there).
        render: Call ``env.render()`` after every reset and step (for ``render_mode="human"``).
        num_envs: Most envs stepped in lockstep by the batched path (default: ``n_episodes``).

    Returns:
        An :class:`EvalResult` with the episodes in seed order.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
    if num_envs is not None and num_envs < 1:
        raise ValueError(f"num_envs must be >= 1 or None, got {num_envs}")
    batched = _has_batched_predict(agent)
    # Agents acting one observation at a time keep one env, as their get_action may carry
    # state across calls; batched agents step every episode's env in lockstep.
    n_envs = min(n_episodes, num_envs or n_episodes) if batched else 1
    with _seeded_global_rngs(seed):
        envs: list[Any] = []
        try:
            for index in range(n_envs):
                envs.append(env_factory(None if seed is None else seed + index))
            stats = play_episodes(
                envs, agent_policy(agent), n_episodes, deterministic, seed, max_steps,
                on_frame=(lambda _, env: env.render()) if render else None,
            )
        finally:
            for env in envs:
                env.close()
    return EvalResult(returns=stats.returns, lengths=stats.lengths, deterministic=deterministic, seed=seed)


def agent_policy(agent: Any) -> Policy:
    """The agent as a rollout Policy: its batched ``predict`` when it has one, else ``get_action``."""
    return PredictPolicy(agent) if _has_batched_predict(agent) else GetActionPolicy(agent)


def record_video(
    agent: Agent,
    env_factory: EnvFactory,
    path: str | os.PathLike[str],
    n_episodes: int = 1,
    deterministic: bool = True,
    seed: int | None = None,
    fps: int = 30,
    max_steps: int | None = None,
) -> EvalResult:
    """Play ``n_episodes`` episodes one after another into one video file.

    The env from ``env_factory(seed)`` must render RGB arrays: build it with
    ``gym.make(env_id, render_mode="rgb_array")``. One frame is written after every reset
    and every step. The format follows the extension of ``path`` (``.mp4`` needs
    ``imageio-ffmpeg``; ``.gif`` works with ``imageio`` alone).

    Args:
        agent: The policy; ``predict`` is used (on a batch of one) when available.
        env_factory: ``env_factory(seed)`` returns one env with ``render_mode="rgb_array"``.
        path: Output file; its folder is created if missing.
        n_episodes: Episodes to record, reset with seeds ``seed``, ``seed + 1``, ...
        deterministic: Passed to ``predict``; ignored by plain agents.
        seed: As in :func:`evaluate`.
        fps: Frames per second of the video.
        max_steps: Cut episodes after this many steps.

    Returns:
        The :class:`EvalResult` of the recorded episodes.

    Raises:
        MissingDependencyError: ``imageio`` is not installed (``pip install 'daedalus[video]'``).
        DaedalusError: The env does not render RGB arrays.
    """
    try:
        import imageio
    except ImportError:
        raise MissingDependencyError("imageio", "video", "Recording videos") from None
    import numpy as np

    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _seeded_global_rngs(seed):
        env = env_factory(seed)
        try:
            if env.render_mode != "rgb_array":
                raise DaedalusError(
                    f"Recording a video needs an env that renders RGB frames, but this one has "
                    f"render_mode={env.render_mode!r}. Create it with "
                    f"gym.make(env_id, render_mode='rgb_array') in the env factory."
                )
            writer: Any
            with imageio.get_writer(path, **_writer_options(path, fps)) as writer:
                stats = play_episodes(
                    [env], agent_policy(agent), n_episodes, deterministic, seed, max_steps,
                    on_frame=lambda _, env: writer.append_data(_even_frame(np.asarray(env.render()))),
                )
        finally:
            env.close()
    return EvalResult(returns=stats.returns, lengths=stats.lengths, deterministic=deterministic, seed=seed)


def record_multiagent_video(
    make_env: EnvFactory,
    groups: Mapping[str, list[str]],
    policies: Mapping[str, Any],
    path: str | os.PathLike[str],
    n_episodes: int = 1,
    deterministic: bool = True,
    seed: int | None = None,
    fps: int = 30,
    one_hot: Collection[str] = (),
    critics: Mapping[str, str] | None = None,
) -> Any:
    """Play ``n_episodes`` episodes of a multi-agent env one after another into one video file.

    ``make_env`` builds a PettingZoo env that renders RGB arrays (``render_mode="rgb_array"``);
    episode ``i`` is reset with ``seed + i`` and each group acts with its policy, as in
    :func:`daedalus.rollout.multiagent.evaluate_policies`, whose result it returns (team, per
    policy and per agent returns). One frame after the reset and after every step.
    """
    try:
        import imageio
    except ImportError:
        raise MissingDependencyError("imageio", "video", "Recording videos") from None
    import numpy as np

    from daedalus.envs.pettingzoo import NamedMultiAgentVecEnv
    from daedalus.rollout.multiagent import (
        MultiAgentEvaluation,
        critic_groups,
        play_wave,
        policy_transforms,
    )

    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    transforms = policy_transforms(policies)
    result = MultiAgentEvaluation([], {}, {agent: name for name, agents in groups.items() for agent in agents})
    writer: Any
    with imageio.get_writer(path, **_writer_options(path, fps)) as writer:
        for episode in range(n_episodes):
            episode_seed = None if seed is None else seed + episode
            envs = NamedMultiAgentVecEnv(make_env, 1, groups, seed=episode_seed, one_hot_agent_id=list(one_hot), centralized_critic=critic_groups(critics)[0], state_critic=critic_groups(critics)[1])
            try:
                if getattr(envs.envs[0], "render_mode", None) != "rgb_array":
                    raise DaedalusError(
                        "Recording a video needs an env that renders RGB frames; build the PettingZoo env with "
                        "render_mode='rgb_array' (daedalus replay does)."
                    )

                def frame(ended: bool, envs: Any = envs) -> None:
                    if not ended:  # after the last step the copy has already been reset
                        writer.append_data(_even_frame(np.asarray(envs.envs[0].render())))

                play_wave(envs, policies, transforms, deterministic, episode_seed, result, on_frame=frame)
            finally:
                envs.close()
    return result


# --------------------------------------------------------------------------- helpers


def _has_batched_predict(agent: Any) -> bool:
    """True when ``agent`` has a ``predict`` of its own (not the base class placeholder)."""
    predict = getattr(type(agent), "predict", None)
    return callable(predict) and predict is not TensorAgent.predict


def _writer_options(path: Path, fps: int) -> dict[str, Any]:
    """Keyword arguments for ``imageio.get_writer``, which differ between its plugins."""
    suffix = path.suffix.lower()
    if suffix in {".mp4", ".mkv", ".mov", ".avi", ".webm"}:
        # Frames are padded to even sizes by _even_frame (yuv420p needs even width and
        # height), so imageio's default resize to multiples of 16, with a warning, is off.
        return {"fps": fps, "macro_block_size": 1}
    if suffix == ".gif":
        # The Pillow plugin takes a per-frame duration in milliseconds; loop=0: forever.
        return {"duration": 1000.0 / fps, "loop": 0}
    return {"fps": fps}


def _even_frame(frame: Any) -> Any:
    import numpy as np

    pad_height, pad_width = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_height or pad_width:
        pad = [(0, pad_height), (0, pad_width)] + [(0, 0)] * (frame.ndim - 2)
        frame = np.pad(frame, pad, mode="edge")
    return frame


@contextlib.contextmanager
def _seeded_global_rngs(seed: int | None) -> Iterator[None]:
    """Seed ``random``, NumPy and torch for the block, then restore their previous states.

    Torch is only touched when something already imported it: evaluating a NumPy agent
    should not pay for importing torch.
    """
    if seed is None:
        yield
        return
    import numpy as np

    python_state = random.getstate()
    numpy_state = np.random.get_state()
    torch = sys.modules.get("torch")
    with contextlib.ExitStack() as stack:
        if torch is not None:
            # Fork CUDA generators only when CUDA is already in use: forking them otherwise
            # would initialize CUDA just to evaluate a CPU agent.
            devices: list[int] | None = None if torch.cuda.is_initialized() else []
            stack.enter_context(torch.random.fork_rng(devices=devices))
            torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
