"""A sleep-bound env for collection benchmarks: every ``step`` waits ``step_seconds`` (2 ms) and
does nothing else, so many copies in many processes scale on a 2-core machine.

Importing this module registers it with Gymnasium as :data:`SLEEP_ID`. Ray workers unpickle
:class:`SleepMaker` by reference (``sleep_env.SleepMaker``), which imports this module, so the
``benchmarks`` folder must be on their ``PYTHONPATH`` (``ray_collection.py`` sets it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

SLEEP_ID = "DaedalusBenchSleep-v0"
#: Episodes are truncated after this many steps (an occasional reset, as in a real env).
MAX_EPISODE_STEPS = 1_000


class SleepEnv(gym.Env[np.ndarray, np.int64]):
    """Observation ``[step / MAX_EPISODE_STEPS]``, two actions, reward 1; ``step`` sleeps ``step_seconds``."""

    def __init__(self, step_seconds: float = 0.002) -> None:
        self.step_seconds = step_seconds
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self._step = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._step = 0
        return self._obs(), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        time.sleep(self.step_seconds)
        self._step += 1
        return self._obs(), 1.0, False, False, {}

    def _obs(self) -> np.ndarray:
        return np.array([self._step / MAX_EPISODE_STEPS], dtype=np.float32)


if SLEEP_ID not in gym.registry:
    gym.register(SLEEP_ID, entry_point=SleepEnv, max_episode_steps=MAX_EPISODE_STEPS)


@dataclass(frozen=True)
class SleepMaker:
    """A picklable ``make_env(seed)`` of the sleep env (reset with ``seed`` if given)."""

    step_seconds: float = 0.002

    def __call__(self, seed: int | None = None) -> gym.Env[Any, Any]:
        env = gym.make(SLEEP_ID, step_seconds=self.step_seconds)
        if seed is not None:
            env.reset(seed=seed)
        return env

    def recipe(self) -> SleepMaker:
        """What a Ray worker calls to get its ``make_env`` (``worker_source``'s ``env_recipe``)."""
        return self
