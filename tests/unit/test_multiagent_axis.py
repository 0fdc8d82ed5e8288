"""A 2-agent toy env trained by PPO with ONE shared policy, through the flat agent axis.

The env follows :class:`daedalus.envs.vector.ArrayMultiAgentEnv`: ``num_agents`` plus arrays
with a leading agent axis. Each agent sees a private cue (+1 or -1) and is rewarded for
answering with the matching action; agent 1 also gets a bonus when it sees -1, so the two
agents' data differ. Episodes last 4 steps (truncated); agent 0 terminates early on a wrong
answer, which exercises per-agent termination and the masking of dead agents.
"""

import gymnasium as gym
import numpy as np

from daedalus.algos.ppo import PPOConfig, make_ppo_agent, train_ppo
from daedalus.envs.vector import make_vec_env
from daedalus.rollout import SerialWorker
from daedalus.types import TrainContext


class CueEnv:
    num_agents = 2
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, seed=None):
        self.rng = np.random.default_rng(seed)
        self.cues = np.ones(2)
        self.t = 0
        self.dead = np.zeros(2, bool)

    def _obs(self):
        return np.stack([self.cues, np.arange(2) * 1.0], axis=1).astype(np.float32)  # (agents, 2)

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        self.dead[:] = False
        self.cues = self.rng.choice([-1.0, 1.0], size=2)
        return self._obs(), {}

    def step(self, actions):
        correct = (actions == (self.cues > 0)).astype(np.float32)
        rewards = correct.copy()
        self.t += 1
        terminated = np.array([correct[0] == 0, False]) & ~self.dead
        self.dead |= terminated
        truncated = np.full(2, self.t >= 4) & ~self.dead
        self.cues = self.rng.choice([-1.0, 1.0], size=2)
        return self._obs(), rewards, terminated, truncated, {}


class Sink:
    def log(self, step, metrics):
        pass

    def close(self):
        pass

    def update(self, **kwargs):
        pass


def make_env(seed=None):
    return CueEnv(seed)


def test_worker_presents_flat_agent_axis():
    worker = SerialWorker(make_vec_env(make_env, 3, "cue", {}, "auto", seed=0))
    assert (worker.num_envs, worker.num_agents, worker.batch_size) == (3, 2, 6)
    obs = worker.reset(seed=0)
    assert obs.shape == (6, 2)
    np.testing.assert_array_equal(obs[:, 1], [0, 1, 0, 1, 0, 1])  # env-major, agent-minor rows
    batch = worker.step(np.zeros(6, dtype=np.int64))
    assert batch.rewards.shape == batch.terminated.shape == batch.valid.shape == (6,)


def test_ppo_trains_one_shared_policy_for_two_agents():
    context = TrainContext(
        profile_id="cue", agent_id="ppo", env_id="cue", env_args={}, num_envs=4, seed=0, vectorization="auto",
        device="cpu", config=None, make_env=make_env, logger=Sink(), progress=Sink(), checkpoint=lambda *a: None,
    )
    config = PPOConfig(total_steps=6_000, num_steps=32, learning_rate=3e-3, update_epochs=4, num_minibatches=2,
                       eval_every_steps=0, checkpoint_every_steps=0, hidden_sizes=[32], ent_coef=0.0)
    agent = make_ppo_agent(CueEnv.observation_space, CueEnv.action_space, config, seed=0)
    train_ppo(make_env, agent, config, {}, None, context)
    # Steps count every agent of every env copy: 4 envs x 2 agents x 32 steps per rollout.
    assert agent.global_step == 6_144
    obs = np.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 1.0], [-1.0, 1.0]], np.float32)
    np.testing.assert_array_equal(agent.predict(obs), [1, 0, 1, 0])
