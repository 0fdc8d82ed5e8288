"""A small DQN agent in the Crete style: an ``Agent`` subclass plus a separate training wrapper.

The agent knows how to act and how to turn itself into bytes; everything about training
(replay buffer, epsilon schedule, target network, evaluation, snapshots) lives in
:func:`dqn_training_wrapper`, which Daedalus calls with Crete's five arguments.
"""

from __future__ import annotations

import copy
import pickle
import random
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from daedalus import Agent, ExtraState, ProfileConfig, report

DEFAULT_HIDDEN_LAYERS = (64, 64)


class QNetwork(nn.Module):
    """An MLP from a flat observation to one Q-value per action; its hidden sizes can be changed."""

    def __init__(self, obs_dim: int, n_actions: int, hidden_layers: Sequence[int] = DEFAULT_HIDDEN_LAYERS) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.n_actions = n_actions
        self.set_hidden_layers(hidden_layers)

    def set_hidden_layers(self, hidden_layers: Sequence[int]) -> None:
        """Rebuild the layers (fresh weights) with these hidden sizes."""
        self.hidden_layers = [int(h) for h in hidden_layers]
        sizes = [self.obs_dim, *self.hidden_layers]
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], self.n_actions))
        self.body = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.body(obs)


class DQNAgent(Agent):
    """Greedy action from a Q-network; epsilon-greedy exploration is the training wrapper's job."""

    def __init__(self, obs: Sequence[int], n_actions: int, device: str = "cpu") -> None:
        super().__init__("DQN")
        self.device = torch.device(device)
        self.obs_dim = int(np.prod(obs))
        self.n_actions = int(n_actions)
        self.net = QNetwork(self.obs_dim, self.n_actions).to(self.device)

    def q_values(self, obs: Any) -> torch.Tensor:
        """Q-values for a batch of observations (first axis is the batch)."""
        batch = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        with torch.no_grad():
            return self.net(batch.reshape(len(batch), -1))

    def get_action(self, obs: Any, extra_state: ExtraState = None) -> tuple[int, ExtraState]:
        """Request an action: the greedy one."""
        return int(self.q_values(np.asarray(obs)[None]).argmax(dim=1).item()), extra_state

    def save(self) -> bytes:
        """Extract all policy data (weights and the hidden sizes they need)."""
        data = {
            "data": {k: v.cpu() for k, v in self.net.state_dict().items()},
            "layers": self.net.hidden_layers,
        }
        return pickle.dumps(data)

    def load(self, agent_data: bytes) -> None:
        """Load policy data written by :meth:`save`."""
        agent_dict = pickle.loads(agent_data)
        data, layers = itemgetter("data", "layers")(agent_dict)

        self.net.set_hidden_layers(layers)
        self.net.load_state_dict(data)
        self.net.to(self.device)


class ReplayBuffer:
    """A FIFO ring of transitions, preallocated."""

    def __init__(self, capacity: int, obs_dim: int) -> None:
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.size = 0
        self.cursor = 0

    def add(self, obs: Any, action: int, reward: float, next_obs: Any, terminated: bool) -> None:
        i = self.cursor
        self.obs[i], self.next_obs[i] = np.ravel(obs), np.ravel(next_obs)
        self.actions[i], self.rewards[i], self.terminated[i] = action, reward, float(terminated)
        self.cursor = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        idx = rng.integers(0, self.size, size=batch_size)
        return {
            "obs": torch.from_numpy(self.obs[idx]),
            "actions": torch.from_numpy(self.actions[idx]),
            "rewards": torch.from_numpy(self.rewards[idx]),
            "next_obs": torch.from_numpy(self.next_obs[idx]),
            "terminated": torch.from_numpy(self.terminated[idx]),
        }


def evaluate_greedy(agent: DQNAgent, env_factory: Callable[[int], gym.Env], seeds: Sequence[int]) -> list[float]:
    """Returns of one greedy episode per seed, each on a fresh environment (reproducible)."""
    returns = []
    for seed in seeds:
        env = env_factory(seed)
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            action, _ = agent.get_action(obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        env.close()
        returns.append(total)
    return returns


def eval_seeds(config: ProfileConfig) -> list[int]:
    """The seeds of the evaluation episodes (fixed, so that an evaluation can be repeated)."""
    first = int(config.get("eval_seed", 10_000))
    return [first + i for i in range(int(config.get("eval_episodes", 3)))]


def dqn_training_wrapper(
    env_factory: Callable[[int], gym.Env],  # Function that creates the environment.
    agent: DQNAgent,  # The agent itself.
    config: ProfileConfig,  # Object with config values.
    artifacts: dict[str, Any],  # Empty map for storing training information.
    save_callback: Callable[..., None],  # Function for saving agents, for instance at peak rewards.
) -> None:
    """The DQN training procedure: replay buffer, linear epsilon decay, target network."""
    total_steps = int(config.total_steps)
    decay_steps = int(config.get("decay_steps", total_steps))
    init_epsilon, final_epsilon = float(config.init_epsilon), float(config.final_epsilon)
    batch_size = int(config.batch_size)
    gamma = float(config.get("gamma", 0.99))
    learning_starts = int(config.get("learning_starts", batch_size))
    train_freq = int(config.get("train_freq", 1))
    refresh_freq = int(config.get("refresh_target_network_freq", 500))
    eval_freq, gather_freq = int(config.eval_freq), int(config.gather_freq)
    seed = int(config.get("seed", 0))

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    # The factory only knows the observation and action sizes, so the hidden layers come
    # from the config here; save() records them so that load() can rebuild the network.
    agent.net.set_hidden_layers(config.get("hidden_layers", DEFAULT_HIDDEN_LAYERS))
    agent.net.to(agent.device)
    target = copy.deepcopy(agent.net)
    optimizer = torch.optim.Adam(agent.net.parameters(), lr=float(config.get("learning_rate", 1e-3)))
    buffer = ReplayBuffer(int(config.get("replay_buffer_size", 10_000)), agent.obs_dim)

    artifacts["loss"] = []  # [step, mean TD loss over the last gather_freq steps]
    artifacts["epsilon"] = []
    artifacts["episode_returns"] = []
    artifacts["evaluations"] = []  # {"step", "mean_return", "returns"}; Daedalus reads mean_return
    best_return = float("-inf")
    recent_losses: list[float] = []

    env = env_factory(seed)
    obs, _ = env.reset(seed=seed)
    episode_return, episodes = 0.0, 0
    for step in range(1, total_steps + 1):
        epsilon = final_epsilon + (init_epsilon - final_epsilon) * max(0.0, 1.0 - (step - 1) / max(1, decay_steps))
        if rng.random() < epsilon:
            action = int(rng.integers(agent.n_actions))
        else:
            action, _ = agent.get_action(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        # Only termination cuts the bootstrap: a time-limit truncation is not a terminal state.
        buffer.add(obs, action, float(reward), next_obs, terminated)
        episode_return += float(reward)
        obs = next_obs
        if terminated or truncated:
            episodes += 1
            artifacts["episode_returns"].append([step, episode_return])
            report(steps=step, episodes=episodes, last_return=episode_return)
            episode_return = 0.0
            obs, _ = env.reset()

        if step >= learning_starts and step % train_freq == 0:
            batch = buffer.sample(batch_size, rng)
            with torch.no_grad():
                next_q = target(batch["next_obs"]).max(dim=1).values
                td_target = batch["rewards"] + gamma * next_q * (1.0 - batch["terminated"])
            q = agent.net(batch["obs"]).gather(1, batch["actions"][:, None]).squeeze(1)
            loss = nn.functional.mse_loss(q, td_target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            recent_losses.append(float(loss.item()))
        if step % refresh_freq == 0:
            target.load_state_dict(agent.net.state_dict())
        if step % gather_freq == 0:
            if recent_losses:
                artifacts["loss"].append([step, float(np.mean(recent_losses))])
                recent_losses.clear()
            artifacts["epsilon"].append([step, epsilon])
            report(steps=step, epsilon=epsilon)
        if step % eval_freq == 0 or step == total_steps:
            returns = evaluate_greedy(agent, env_factory, eval_seeds(config))
            mean_return = float(np.mean(returns))
            artifacts["evaluations"].append({"step": step, "mean_return": mean_return, "returns": returns})
            if mean_return > best_return:
                best_return = mean_return
                save_callback(agent, artifacts, step, "best")
    env.close()
    # The last evaluation ran on the weights Daedalus saves as "final".
    artifacts["final_evaluation"] = artifacts["evaluations"][-1]
