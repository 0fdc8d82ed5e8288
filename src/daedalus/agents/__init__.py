"""Agent contracts: the Crete-style :class:`Agent`, tensor-checkpointed agents and stepwise agents."""

from daedalus.agents.base import Agent, TensorAgent

__all__ = ["Agent", "TensorAgent"]
