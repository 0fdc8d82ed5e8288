"""Gym Loop's random agent, shaped as in its README: no parameters, random actions.

``self.action_space`` is set (and seeded with the profile's seed) by Daedalus before the
first ``act``, so the agent needs no constructor of its own.
"""

from __future__ import annotations

from typing import Any

from daedalus import StepAgent


class RandomAgent(StepAgent):
    """Uniformly random actions; learns nothing."""

    @staticmethod
    def get_default_parameters() -> dict[str, Any]:
        """No tweakable parameters."""
        return {}

    def act(self, state: Any, episode_num: int) -> Any:
        """A random action from the env's action space."""
        return self.action_space.sample()

    def memorize(self, last_ob: Any, action: Any, reward: float, done: bool, ob: Any) -> None:
        """Nothing to remember."""

    def update(self, episode_num: int) -> None:
        """Nothing to learn."""
