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
    """Random actions for ``total_steps`` steps (default 1000) on the profile's ``num_envs`` copies.

    Steps go through the same rollout source as every built-in algorithm (the framework's
    own cost, measured in ``benchmarks/framework_overhead.py``); episode returns are logged.
    """
    from daedalus.rollout import DEFAULT_GROUP
    from daedalus.rollout.policies import RandomPolicy
    from daedalus.rollout.source import local_source

    total_steps = int(config.get("total_steps", 1000))
    source = local_source(
        env_factory, context.num_envs, context.env_id, context.env_args, context.vectorization, context.seed, context.backend
    )
    policies = {DEFAULT_GROUP: RandomPolicy(source.action_space, agent.seed)}
    returns: list[float] = []
    steps = 0
    chunk = max(1, 256 // source.batch_size)
    try:
        source.reset(seed=context.seed)
        while steps < total_steps:
            num_steps = min(chunk, -(-(total_steps - steps) // source.batch_size))
            trajectory = source.sample(policies, num_steps)[DEFAULT_GROUP]
            steps += trajectory.num_transitions
            finished = trajectory.episode_returns.tolist()
            returns.extend(finished)
            if finished:  # one row per collection, as every algorithm logs (not one per episode)
                context.logger.log(steps, {"charts/episode_return": float(sum(returns[-20:]) / len(returns[-20:]))})
            context.progress.update(steps=steps, episodes=len(returns), last_return=returns[-1] if returns else None)
    finally:
        source.close()
    artifacts["episode_returns"] = returns


AGENT_SPEC = AgentSpec(
    agent_id="random",
    agent_factory=lambda action_space, seed: RandomAgent(action_space, seed),
    training_wrapper=train_random,
    description="Uniformly random actions (a baseline)",
)
