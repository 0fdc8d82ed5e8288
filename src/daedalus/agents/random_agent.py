"""The built-in ``random`` agent: uniformly random actions, a baseline for any environment."""

from __future__ import annotations

import json
from typing import Any

from daedalus.agents.base import Agent
from daedalus.specs import AgentSpec
from daedalus.types import ExtraState, TrainContext


class RandomAgent(Agent):
    """Samples actions uniformly from the action space."""

    def __init__(self, action_space: Any, seed: int | None = None) -> None:
        super().__init__("random")
        self.action_space = action_space
        self.seed = seed
        self.action_space.seed(seed)

    def get_action(self, obs: Any, extra_state: ExtraState = None) -> tuple[Any, ExtraState]:
        """A random action; ``obs`` is ignored."""
        return self.action_space.sample(), extra_state

    def save(self) -> bytes:
        """Only the seed: there is nothing to learn."""
        return json.dumps({"seed": self.seed}).encode()

    def load(self, agent_data: bytes) -> None:
        """Restore the seed."""
        self.seed = json.loads(agent_data.decode()).get("seed")


def train_random(
    env_factory: Any,
    agent: RandomAgent,
    config: Any,
    artifacts: dict[str, Any],
    save_callback: Any,
    context: TrainContext,
) -> None:
    """Run random episodes for ``total_steps`` steps (default 1000), recording returns."""
    total_steps = int(config.get("total_steps", 1000))
    env = env_factory(context.seed)
    obs, _ = env.reset()
    returns: list[float] = []
    episode_return, episodes = 0.0, 0
    for step in range(1, total_steps + 1):
        action, _ = agent.get_action(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        episode_return += float(reward)
        if terminated or truncated:
            episodes += 1
            returns.append(episode_return)
            context.logger.log(step, {"episode_return": episode_return})
            context.progress.update(steps=step, episodes=episodes, last_return=episode_return)
            episode_return = 0.0
            obs, _ = env.reset()
        elif step % 256 == 0:
            context.progress.update(steps=step)
    context.progress.update(steps=total_steps)
    env.close()
    artifacts["episode_returns"] = returns


AGENT_SPEC = AgentSpec(
    agent_id="random",
    agent_factory=lambda action_space, seed: RandomAgent(action_space, seed),
    training_wrapper=train_random,
    description="Uniformly random actions (a baseline)",
)
