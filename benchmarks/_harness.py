"""What the SB3 comparison scripts share: the evaluation protocol's constants and small helpers."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

#: Evaluate every this many training steps (clock paused), this many deterministic episodes.
EVAL_EVERY = 2_000
EVAL_EPISODES = 20
#: Deterministic episodes of the evaluation after training.
FINAL_EPISODES = 50


class Null:
    """A metric and progress sink that drops everything."""

    def log(self, step: int, metrics: dict[str, float]) -> None: ...
    def close(self) -> None: ...
    def update(self, **kwargs: Any) -> None: ...


def env_factory(env_id: str) -> Callable[[int | None], gym.Env]:
    """``make_env(seed)`` with the spine's semantics: a fresh env, reset once with ``seed`` if given."""

    def make_env(seed: int | None = None) -> gym.Env:
        env = gym.make(env_id)
        if seed is not None:
            env.reset(seed=seed)
        return env

    return make_env


class SB3Policy:
    """Batched ``predict`` over an SB3 model, for :func:`daedalus.evaluation.evaluate`."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return self.model.predict(obs, deterministic=deterministic)[0]


def first_hit(evaluations: list[dict[str, float]], threshold: float, key: str = "train_seconds") -> float:
    """``key`` (training clock by default) of the first evaluation at or above ``threshold``; inf if none."""
    return next((e[key] for e in evaluations if e["mean_return"] >= threshold), float("inf"))


def median(values: list[float]) -> float:
    """Median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


def fmt(value: float, digits: int = 2) -> str:
    """A number for the tables; ``never`` for infinity."""
    return "never" if value == float("inf") else f"{value:,.{digits}f}"
