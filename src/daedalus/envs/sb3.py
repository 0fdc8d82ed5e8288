"""Environments for Stable-Baselines3 agents: the vector env SB3's ``learn()`` steps, and a
spaces-only env to build a model that only acts (evaluation, replay, import).

SB3's algorithms step their ``VecEnv`` themselves: this is the one collection path Daedalus
does not own (docs/sb3.md). What Daedalus controls is how that vector env is built —
exactly as ``stable_baselines3.common.env_util.make_vec_env`` builds it (``Monitor`` per copy,
action space of copy ``i`` seeded ``seed + i``, ``DummyVecEnv``, ``vec_env.seed(seed)``), from
the profile's ``make_env`` instead of ``gym.make`` — and it measures the seconds spent in the
envs, for the env / inference / learn split of every training log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym

__all__ = ["SpacesEnv", "sb3_vec_env", "timed"]


class SpacesEnv(gym.Env):
    """An env that only has spaces: what an SB3 model is built on when it will only act."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, observation_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        """Not an environment to play: a model built on it is given its real env to train."""
        raise RuntimeError("SpacesEnv only describes spaces; it cannot be reset.")

    def step(self, action: Any) -> Any:
        """See :meth:`reset`."""
        raise RuntimeError("SpacesEnv only describes spaces; it cannot be stepped.")


def sb3_vec_env(make_env: Callable[[int | None], Any], num_envs: int, seed: int | None, subprocesses: bool = False) -> Any:
    """``make_vec_env(make_env, n_envs=num_envs, seed=seed)``, with the profile's env factory.

    Each copy is built unseeded (``make_env(None)``), its action space seeded ``seed + i``
    and wrapped in SB3's ``Monitor`` (episode returns in ``info["episode"]``); the copies run
    in a ``DummyVecEnv`` (``subprocesses``: a ``SubprocVecEnv``, one process per copy, as
    ``make_vec_env(..., vec_env_cls=SubprocVecEnv)``) whose first reset is seeded ``seed + i``.
    Wrapped by :func:`timed`, which only measures (``env_time``).
    """
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    def thunk(rank: int) -> Callable[[], Any]:
        def build() -> Any:
            copy = make_env(None)
            if seed is not None:
                copy.action_space.seed(seed + rank)
            return Monitor(copy)

        return build

    vec = (SubprocVecEnv if subprocesses else DummyVecEnv)([thunk(rank) for rank in range(num_envs)])
    vec.seed(seed)
    return timed(vec)


def timed(venv: Any) -> Any:
    """``venv`` wrapped in :class:`TimedVecEnv` (built on first use: SB3 is optional)."""
    return _timed_class()(venv)


_CLASSES: dict[str, type] = {}


def _timed_class() -> type:
    if "timed" in _CLASSES:
        return _CLASSES["timed"]
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class _TimedVecEnv(VecEnvWrapper):
        """Passes everything through; ``env_time`` sums the seconds spent in reset and step."""

        def __init__(self, venv: Any) -> None:
            super().__init__(venv)
            self.env_time = 0.0
            self._started = 0.0

        def reset(self) -> Any:
            start = time.perf_counter()
            obs = self.venv.reset()
            self.env_time += time.perf_counter() - start
            return obs

        def step_async(self, actions: Any) -> None:
            self._started = time.perf_counter()
            self.venv.step_async(actions)

        def step_wait(self) -> Any:
            out = self.venv.step_wait()
            self.env_time += time.perf_counter() - self._started
            return out

    _CLASSES["timed"] = _TimedVecEnv
    return _TimedVecEnv

