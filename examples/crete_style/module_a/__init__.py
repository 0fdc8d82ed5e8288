"""The user's project module: importing it registers the DQN agent with Daedalus."""

from daedalus import register_agent

from .dqn_agent import DQNAgent, dqn_training_wrapper

register_agent(
    agent_id="DQN",
    agent_factory=lambda obs, n_actions, device: DQNAgent(obs, n_actions, device=device),
    training_wrapper=dqn_training_wrapper,
)
