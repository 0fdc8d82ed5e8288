"""make_vec_env: mode selection, wrappers, seeding, autoreset modes."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from daedalus.envs.vector import MultiAgentVectorEnv, autoreset_mode, make_vec_env
from daedalus.errors import DaedalusError


def factory(env_id, wrapper=None):
    def make_env(seed=None):
        env = gym.make(env_id)
        if wrapper is not None:
            env = wrapper(env)
        if seed is not None:
            env.reset(seed=seed)
        return env

    return make_env


def test_auto_uses_native_cartpole():
    envs = make_vec_env(factory("CartPole-v1"), 4, "CartPole-v1", {}, "auto", seed=0)
    assert type(envs).__name__ == "CartPoleVectorEnv"
    assert autoreset_mode(envs) == AutoresetMode.NEXT_STEP
    envs.close()


def test_wrappers_rule_out_native():
    make_env = factory("CartPole-v1", lambda env: gym.wrappers.ClipReward(env, -1.0, 1.0))
    envs = make_vec_env(make_env, 2, "CartPole-v1", {}, "auto", seed=0)
    assert isinstance(envs, SyncVectorEnv)
    assert autoreset_mode(envs) == AutoresetMode.SAME_STEP
    with pytest.raises(DaedalusError, match="native"):
        make_vec_env(make_env, 2, "CartPole-v1", {}, "native", seed=0)
    envs.close()


def test_cheap_env_without_native_is_sync_and_async_on_request():
    envs = make_vec_env(factory("Pendulum-v1"), 2, "Pendulum-v1", {}, "auto", seed=0)
    assert isinstance(envs, SyncVectorEnv)
    envs.close()
    envs = make_vec_env(factory("Pendulum-v1"), 2, "Pendulum-v1", {}, "async", seed=0)
    assert isinstance(envs, AsyncVectorEnv)
    assert autoreset_mode(envs) == AutoresetMode.SAME_STEP
    envs.close()


def test_seeding_is_reproducible_and_per_copy():
    a = make_vec_env(factory("Pendulum-v1"), 2, "Pendulum-v1", {}, "sync", seed=3)
    b = make_vec_env(factory("Pendulum-v1"), 2, "Pendulum-v1", {}, "sync", seed=3)
    obs_a, _ = a.reset(seed=3)
    obs_b, _ = b.reset(seed=3)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert not np.array_equal(obs_a[0], obs_a[1])


def test_same_step_final_obs_is_real_final_observation():
    envs = make_vec_env(factory("CartPole-v1"), 2, "CartPole-v1", {}, "sync", seed=0)
    envs.reset(seed=0)
    for _ in range(200):
        obs, _, terminated, truncated, info = envs.step(np.ones(2, dtype=np.int64))
        if terminated.any():
            row = int(np.flatnonzero(terminated)[0])
            final = info["final_obs"][row]
            assert abs(final[2]) > 0.2 or abs(final[0]) > 2.4  # pole fell or cart left: terminal
            assert abs(obs[row][2]) <= 0.05  # already reset
            break
    else:
        raise AssertionError("CartPole should terminate when always pushing right")


def test_bad_mode_is_an_error():
    with pytest.raises(DaedalusError, match="vectorization"):
        make_vec_env(factory("CartPole-v1"), 2, "CartPole-v1", {}, "threads")


class TwoAgentEnv:
    num_agents = 2
    observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros((2, 1), np.float32), {}

    def step(self, actions):
        self.t += 1
        terminated = np.array([self.t >= 2, self.t >= 3])
        return np.full((2, 1), self.t, np.float32), np.ones(2, np.float32), terminated, np.zeros(2, bool), {}


def test_multi_agent_envs_flatten_and_mask_dead_agents():
    envs = make_vec_env(lambda seed=None: TwoAgentEnv(), 3, "two", {}, "auto", seed=0)
    assert isinstance(envs, MultiAgentVectorEnv) and envs.num_agents == 2
    obs, _ = envs.reset()
    assert obs.shape == (6, 1)
    actions = np.zeros(6, dtype=np.int64)
    envs.step(actions)
    _, rewards, terminated, _, info = envs.step(actions)
    assert terminated.tolist() == [True, False] * 3
    _, rewards, terminated, _, info = envs.step(actions)  # agent 0 is dead, agent 1 ends: reset
    assert info["valid"].tolist() == [False, True] * 3
    assert rewards.tolist() == [0.0, 1.0] * 3
    assert terminated.tolist() == [False, True] * 3
    assert info["_final_obs"].all() and info["final_obs"][1, 0] == 3.0
