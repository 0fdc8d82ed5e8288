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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daedalus.agents.base import Agent, TensorAgent
from daedalus.errors import DaedalusError, MissingDependencyError
from daedalus.types import ExtraState

if TYPE_CHECKING:
    import gymnasium as gym

    from daedalus.types import EnvFactory

__all__ = ["EvalResult", "evaluate", "record_video"]

#: ``act(obs, extra_state) -> (action, extra_state)`` for one env.
_ActFn = Callable[[Any, ExtraState], "tuple[Any, ExtraState]"]


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
    with _seeded_global_rngs(seed):
        if _has_batched_predict(agent):
            n_envs = min(n_episodes, num_envs or n_episodes)
            returns, lengths = _evaluate_batched(
                agent, env_factory, n_episodes, n_envs, deterministic, seed, max_steps, render
            )
        else:
            returns, lengths = [], []
            env = env_factory(seed)
            try:
                for episode in range(n_episodes):
                    episode_return, length = _run_episode(
                        env, agent.get_action, _episode_seed(seed, episode), max_steps, render
                    )
                    returns.append(episode_return)
                    lengths.append(length)
            finally:
                env.close()
    return EvalResult(returns=returns, lengths=lengths, deterministic=deterministic, seed=seed)


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
    act = _batch_of_one(agent, deterministic) if _has_batched_predict(agent) else agent.get_action
    returns: list[float] = []
    lengths: list[int] = []
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

                def write_frame(env: gym.Env) -> None:
                    writer.append_data(_even_frame(np.asarray(env.render())))

                for episode in range(n_episodes):
                    episode_return, length = _run_episode(
                        env, act, _episode_seed(seed, episode), max_steps, on_frame=write_frame
                    )
                    returns.append(episode_return)
                    lengths.append(length)
        finally:
            env.close()
    return EvalResult(returns=returns, lengths=lengths, deterministic=deterministic, seed=seed)


# --------------------------------------------------------------------------- episode loops


def _run_episode(
    env: gym.Env,
    act: _ActFn,
    episode_seed: int | None,
    max_steps: int | None,
    render: bool = False,
    on_frame: Callable[[gym.Env], None] | None = None,
) -> tuple[float, int]:
    """Play one episode with ``act``; return ``(undiscounted return, length)``."""
    obs, _ = env.reset(seed=episode_seed)
    extra_state: ExtraState = None
    _after_step(env, render, on_frame)
    episode_return, length = 0.0, 0
    while True:
        action, extra_state = act(obs, extra_state)
        obs, reward, terminated, truncated, _ = env.step(action)
        _after_step(env, render, on_frame)
        episode_return += float(reward)
        length += 1
        if _episode_over(terminated, truncated, length, max_steps):
            return episode_return, length


def _evaluate_batched(
    agent: Any,
    env_factory: EnvFactory,
    n_episodes: int,
    n_envs: int,
    deterministic: bool,
    seed: int | None,
    max_steps: int | None,
    render: bool,
) -> tuple[list[float], list[int]]:
    """Run ``n_episodes`` episodes on ``n_envs`` envs in lockstep, one ``predict`` per step.

    Each env slot plays episode ``i`` to its end and then takes the next episode index not
    yet started, so exactly ``n_episodes`` episodes run, each to completion, and results
    are stored by episode index (not by the order in which episodes finish, which would
    favour short episodes).
    """
    returns = [0.0] * n_episodes
    lengths = [0] * n_episodes
    envs: list[gym.Env] = []
    try:
        for index in range(n_envs):
            envs.append(env_factory(None if seed is None else seed + index))
        # slot_episode[j] is the episode env j is playing, or None once it has nothing left.
        slot_episode: list[int | None] = list(range(n_envs))
        observations: list[Any] = [None] * n_envs
        for index, env in enumerate(envs):
            observations[index], _ = env.reset(seed=_episode_seed(seed, index))
            _after_step(env, render, None)
        next_episode = n_envs
        while True:
            active = [j for j, episode in enumerate(slot_episode) if episode is not None]
            if not active:
                return returns, lengths
            actions = _to_numpy(
                agent.predict(
                    _stack([observations[j] for j in active]), deterministic=deterministic
                )
            )
            for row, j in enumerate(active):
                episode = slot_episode[j]
                assert episode is not None
                env = envs[j]
                observations[j], reward, terminated, truncated, _ = env.step(actions[row])
                _after_step(env, render, None)
                returns[episode] += float(reward)
                lengths[episode] += 1
                if _episode_over(terminated, truncated, lengths[episode], max_steps):
                    if next_episode < n_episodes:
                        slot_episode[j] = next_episode
                        observations[j], _ = env.reset(seed=_episode_seed(seed, next_episode))
                        _after_step(env, render, None)
                        next_episode += 1
                    else:
                        slot_episode[j] = None
    finally:
        for env in envs:
            env.close()


# --------------------------------------------------------------------------- helpers


def _has_batched_predict(agent: Any) -> bool:
    """True when ``agent`` has a ``predict`` of its own (not the base class placeholder)."""
    predict = getattr(type(agent), "predict", None)
    return callable(predict) and predict is not TensorAgent.predict


def _batch_of_one(agent: Any, deterministic: bool) -> _ActFn:
    """Adapt a batched ``predict`` to the one-observation ``act`` of :func:`_run_episode`."""

    def act(obs: Any, extra_state: ExtraState) -> tuple[Any, ExtraState]:
        return _to_numpy(agent.predict(_stack([obs]), deterministic=deterministic))[0], extra_state

    return act


def _episode_over(terminated: bool, truncated: bool, length: int, max_steps: int | None) -> bool:
    return bool(terminated or truncated) or (max_steps is not None and length >= max_steps)


def _episode_seed(seed: int | None, episode: int) -> int | None:
    return None if seed is None else seed + episode


def _after_step(env: gym.Env, render: bool, on_frame: Callable[[gym.Env], None] | None) -> None:
    if render:
        env.render()
    if on_frame is not None:
        on_frame(env)


def _stack(observations: list[Any]) -> Any:
    """Batch observations along a new first axis; dict and tuple observations per entry."""
    import numpy as np

    first = observations[0]
    if isinstance(first, dict):
        return {key: _stack([obs[key] for obs in observations]) for key in first}
    if isinstance(first, tuple):
        return tuple(_stack([obs[i] for obs in observations]) for i in range(len(first)))
    return np.stack([np.asarray(obs) for obs in observations])


def _to_numpy(actions: Any) -> Any:
    """Torch tensors to NumPy; anything else through ``np.asarray``."""
    import numpy as np

    if hasattr(actions, "detach"):
        actions = actions.detach().cpu().numpy()
    return np.asarray(actions)


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
