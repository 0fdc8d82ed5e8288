"""Time of one PPO gradient step and one acting call on CartPole's 64x64 actor-critic.

    .venv/bin/python benchmarks/ppo_update_step.py

rl-zoo3's CartPole settings: one 256-sample minibatch, 20 epochs per update (so one update is
20 gradient steps); acting is one batched forward + sample for 8 env copies. Prints the
closed-form path (the default) and autograd (``closed_form_gradients: false``), medians of 20.
"""

from __future__ import annotations

import statistics
import time

import gymnasium as gym
import numpy as np
import torch

from daedalus.algos.ppo import PPOConfig, make_ppo_agent, ppo_update
from daedalus.buffers.rollout import RolloutBatch


def main() -> None:
    torch.set_num_threads(1)
    env = gym.make("CartPole-v1")
    n = 256
    batch = RolloutBatch(torch.randn(n, 4), torch.randint(0, 2, (n,)), torch.randn(n) * 0.1 - 0.7,
                         torch.randn(n), torch.randn(n), torch.randn(n))
    for closed_form in (True, False):
        config = PPOConfig(num_minibatches=1, update_epochs=20, closed_form_gradients=closed_form)
        agent = make_ppo_agent(env.observation_space, env.action_space, config, seed=0)
        for _ in range(5):
            ppo_update(agent, batch, config, 0.2)
        times = []
        for _ in range(20):
            start = time.perf_counter()
            ppo_update(agent, batch, config, 0.2)
            times.append(time.perf_counter() - start)
        step_ms = statistics.median(times) * 1e3 / config.update_epochs
        print(f"gradient step ({'closed form' if closed_form else 'autograd'}): {step_ms:.3f} ms")
    obs = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    acts = []
    for _ in range(2000):
        start = time.perf_counter()
        agent.act(obs)
        acts.append(time.perf_counter() - start)
    print(f"act (8 envs): {statistics.median(acts) * 1e6:.1f} us")


if __name__ == "__main__":
    main()
