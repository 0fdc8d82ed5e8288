"""Tabular Q-learning in pure NumPy, written as a Gym Loop stepwise agent.

Works on environments with discrete observations and actions (FrozenLake, Taxi, CliffWalking).
Exploration is epsilon-greedy with a schedule from :mod:`daedalus.sampling`, decayed per
episode. ``memorize`` stores the transition; ``update`` applies the TD update

    Q[s, a] += learning_rate * (r + gamma * max_a' Q[s', a'] * (1 - terminated) - Q[s, a])

bootstrapping on truncation (a time limit is not a terminal state). The Q-table is saved as
an ``.npy`` blob (no pickle), so runs can be resumed and evaluated.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from daedalus import StepAgent
from daedalus.sampling import EpsilonGreedy, ExponentialSchedule, LinearSchedule, Schedule


class QLearningAgent(StepAgent):
    """Tabular Q-learning with an epsilon-greedy schedule."""

    @staticmethod
    def get_default_parameters() -> dict[str, Any]:
        """Learning rate, discount and the exploration schedule (per episode)."""
        return {
            "learning_rate": 0.1,
            "gamma": 0.99,
            "epsilon_start": 1.0,
            "epsilon_end": 0.05,
            "epsilon_schedule": "linear",  # linear | exponential
            "epsilon_decay_episodes": 500,  # linear: episodes from start to end
            "epsilon_decay": 0.995,  # exponential: factor per episode
            "q_table_file": None,  # start from a saved table (.npy or a checkpoint's agent.bin)
        }

    def __init__(
        self, observation_space: Any, action_space: Any, seed: int | None = None, **params: Any
    ) -> None:
        super().__init__(**params)
        if not (hasattr(observation_space, "n") and hasattr(action_space, "n")):
            raise TypeError(
                "QLearningAgent needs discrete observation and action spaces (e.g. FrozenLake-v1, "
                f"Taxi-v3); got {observation_space} and {action_space}."
            )
        p = self.parameters
        self.q_table = np.zeros((int(observation_space.n), int(action_space.n)))
        if p["q_table_file"]:
            with open(p["q_table_file"], "rb") as handle:
                self.load(handle.read())
        self.sampler = EpsilonGreedy(self._schedule(), seed=seed)
        self._transition: tuple[int, int, float, int] | None = None

    def _schedule(self) -> Schedule:
        p = self.parameters
        if p["epsilon_schedule"] == "exponential":
            return ExponentialSchedule(p["epsilon_start"], p["epsilon_end"], p["epsilon_decay"])
        if p["epsilon_schedule"] == "linear":
            return LinearSchedule(
                p["epsilon_start"], p["epsilon_end"], int(p["epsilon_decay_episodes"])
            )
        raise ValueError(
            f"epsilon_schedule must be 'linear' or 'exponential', got {p['epsilon_schedule']!r}"
        )

    def act(self, state: Any, episode_num: int) -> int:
        """Epsilon-greedy while training, greedy otherwise."""
        values = self.q_table[int(state)]
        if not self.training:
            return int(np.argmax(values))
        return int(self.sampler.select(values, episode_num))

    def memorize(self, last_ob: Any, action: Any, reward: float, done: bool, ob: Any) -> None:
        """Keep the transition for :meth:`update` (``self.last_terminated`` says how it ended)."""
        self._transition = (int(last_ob), int(action), float(reward), int(ob))

    def update(self, episode_num: int) -> None:
        """One TD(0) update from the latest transition."""
        if self._transition is None:
            return
        state, action, reward, next_state = self._transition
        p = self.parameters
        bootstrap = (
            0.0 if self.last_terminated else p["gamma"] * float(self.q_table[next_state].max())
        )
        self.q_table[state, action] += p["learning_rate"] * (
            reward + bootstrap - self.q_table[state, action]
        )
        self._transition = None

    def metrics(self, episode_num: int) -> dict[str, float]:
        """Exploration rate, logged by the loop after every episode."""
        return {"epsilon": self.sampler.epsilon(episode_num)}

    def save(self) -> bytes:
        """The Q-table as an .npy blob."""
        buffer = io.BytesIO()
        np.save(buffer, self.q_table, allow_pickle=False)
        return buffer.getvalue()

    def load(self, agent_data: bytes) -> None:
        """Restore a table written by :meth:`save` (or ``np.save``)."""
        table = np.load(io.BytesIO(agent_data), allow_pickle=False)
        if table.shape != self.q_table.shape:
            raise ValueError(
                f"Q-table shape {table.shape} does not match this env's {self.q_table.shape}"
            )
        self.q_table = table
