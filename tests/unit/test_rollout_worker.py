"""Rollout workers: final observations, valid masks, episode statistics, serial == subprocess."""

from functools import partial

import gymnasium as gym
import numpy as np

from daedalus.envs.vector import make_vec_env
from daedalus.rollout import SerialWorker, SubprocessWorker


def make_cartpole(seed=None, max_episode_steps=None):
    env = gym.make("CartPole-v1", max_episode_steps=max_episode_steps) if max_episode_steps else gym.make("CartPole-v1")
    if seed is not None:
        env.reset(seed=seed)
    return env


def run(worker, steps, seed=0):
    worker.reset(seed=seed)
    rng = np.random.default_rng(seed)
    batches = [worker.step(rng.integers(0, 2, worker.batch_size)) for _ in range(steps)]
    return batches


def test_native_next_step_marks_reset_step_invalid_and_keeps_final_obs():
    envs = make_vec_env(make_cartpole, 4, "CartPole-v1", {}, "native", seed=0)
    worker = SerialWorker(envs)
    batches = run(worker, 200)
    seen = False
    for before, after in zip(batches[:-1], batches[1:], strict=True):
        ended = before.terminated | before.truncated
        np.testing.assert_array_equal(after.valid, ~ended)
        if before.terminated.any():
            row = int(np.flatnonzero(before.terminated)[0])
            assert abs(before.final_obs[row][2]) > 0.2 or abs(before.final_obs[row][0]) > 2.4
            seen = True
    assert seen
    # Episode returns count only valid steps and match lengths for CartPole (reward 1 per step).
    returns = np.concatenate([b.episode_returns for b in batches])
    lengths = np.concatenate([b.episode_lengths for b in batches])
    assert len(returns) > 0 and np.array_equal(returns, lengths)


def test_same_step_truncation_exposes_final_obs():
    make_env = partial(make_cartpole, max_episode_steps=5)
    worker = SerialWorker(make_vec_env(make_env, 2, "CartPole-v1", {}, "sync", seed=0))
    worker.reset(seed=0)
    previous = None
    for _ in range(5):
        batch = worker.step(np.array([0, 1]))
        if not batch.truncated.any():
            previous = batch.obs
    assert batch.truncated.all() and not batch.terminated.any()
    assert not np.allclose(batch.final_obs, batch.obs)  # obs is the reset one
    assert not np.allclose(batch.final_obs, previous)  # final obs is one step after the last one
    assert batch.valid.all()
    assert batch.episode_lengths.tolist() == [5, 5]
    assert worker.env_time > 0


def test_subprocess_worker_matches_serial():
    build = partial(make_vec_env, make_cartpole, 3, "CartPole-v1", {}, "sync", 0)
    serial = SerialWorker(build())
    remote = SubprocessWorker(build)
    try:
        assert remote.batch_size == 3 and remote.action_space == serial.action_space
        for a, b in zip(run(serial, 60), run(remote, 60), strict=True):
            np.testing.assert_array_equal(a.obs, b.obs)
            np.testing.assert_array_equal(a.terminated, b.terminated)
            np.testing.assert_array_equal(a.final_obs, b.final_obs)
            np.testing.assert_array_equal(a.episode_returns, b.episode_returns)
        assert remote.env_time > 0
    finally:
        remote.close()
        serial.close()
