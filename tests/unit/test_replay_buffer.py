"""ReplayBuffer: wrap-around, uniform sampling, episode ends (terminated vs truncated), n-step returns,
memory accounting, exact state round trip; Collector's fresh vs buffer sampling."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from daedalus.buffers.replay import ReplayBuffer
from daedalus.envs.vector import make_vec_env
from daedalus.returns import compute_nstep_returns
from daedalus.rollout.collector import Collector
from daedalus.rollout.worker import SerialWorker


def fill(buffer: ReplayBuffer, steps: int, rows: int, start: int = 0, ends: dict[int, str] | None = None) -> None:
    """Observation of step t, row r = 100 * t + r (scalar obs); reward = t; ends[t] ends row 0."""
    ends = ends or {}
    for t in range(start, start + steps):
        obs = np.array([[100.0 * t + r] for r in range(rows)], dtype=np.float32)
        terminated = np.zeros(rows, dtype=bool)
        truncated = np.zeros(rows, dtype=bool)
        if ends.get(t) == "terminated":
            terminated[0] = True
        elif ends.get(t) == "truncated":
            truncated[0] = True
        final = obs + 0.5  # the real final observation is distinguishable from the next slot's obs
        buffer.add(obs, np.full(rows, t, dtype=np.int64), np.full(rows, float(t), np.float32), terminated, truncated, final)


def test_wrap_around_keeps_the_newest_steps_fifo() -> None:
    buffer = ReplayBuffer(capacity=8, num_rows=2, obs_shape=(1,), action_dtype=np.int64, seed=0)
    assert buffer.steps_per_row == 4 and buffer.capacity == 8
    fill(buffer, 6, 2)  # steps 0..5; 0 and 1 are overwritten
    assert buffer.size == 4 and buffer.pos == 2 and len(buffer) == 8
    assert sorted(buffer.obs[:, 0, 0].tolist()) == [200.0, 300.0, 400.0, 500.0]
    slots, rows = buffer.sample_indices(2000)
    sampled_steps = set((buffer.obs[slots, rows, 0] // 100).astype(int).tolist())
    # The newest step (5) is not sampleable yet: its next observation is unknown.
    assert sampled_steps == {2, 3, 4}
    batch = buffer.sample(500)
    # Next observation = the following step of the same row, across the ring's seam.
    np.testing.assert_array_equal(batch.next_obs, batch.obs + 100.0)
    np.testing.assert_array_equal(batch.rewards, batch.obs[:, 0] // 100)


def test_sampling_is_uniform_over_valid_transitions_and_seeded() -> None:
    buffer = ReplayBuffer(capacity=40, num_rows=4, obs_shape=(1,), seed=3)
    for t in range(11):
        valid = np.array([True, True, t % 2 == 0, True])  # row 2 is invalid every other step
        obs = np.array([[100.0 * t + r] for r in range(4)], dtype=np.float32)
        buffer.add(obs, np.zeros(4), np.zeros(4), np.zeros(4, bool), np.zeros(4, bool), valid=valid)
    slots, rows = buffer.sample_indices(200_000)
    assert buffer.valid[slots, rows].all()
    keys = slots * 4 + rows
    counts = np.bincount(keys, minlength=40)
    sampleable = [k for k in range(40) if buffer.valid[k // 4, k % 4] and k // 4 != (buffer.pos - 1) % 10]
    assert len(sampleable) == 9 * 3 + 4  # steps 1..9 sampleable; row 2 valid on 2, 4, 6, 8
    expected = 200_000 / len(sampleable)
    assert np.all(np.abs(counts[sampleable] - expected) < 5 * np.sqrt(expected))
    assert counts.sum() == counts[sampleable].sum()
    # Same seed, same content: same draws.
    again = ReplayBuffer(capacity=40, num_rows=4, obs_shape=(1,), seed=3)
    again.load_state_arrays(buffer.state_arrays())
    buffer.rng = np.random.default_rng(3)
    np.testing.assert_array_equal(buffer.sample_indices(64)[0], again.sample_indices(64)[0])


@pytest.mark.parametrize("kind", ["terminated", "truncated"])
def test_next_obs_at_episode_end_is_the_real_final_observation(kind: str) -> None:
    buffer = ReplayBuffer(capacity=20, num_rows=2, obs_shape=(1,), seed=0)
    fill(buffer, 6, 2, ends={2: kind})
    slots = np.array([2, 2, 1, 3])
    rows = np.array([0, 1, 0, 0])
    batch = buffer.gather(slots, rows)
    # Row 0 ended at step 2: next obs is the stored final obs (200.5), not step 3's reset obs (300).
    assert batch.next_obs[:, 0].tolist() == [200.5, 301.0, 200.0, 400.0]
    assert batch.terminated.tolist() == [kind == "terminated", False, False, False]
    assert batch.truncated.tolist() == [kind == "truncated", False, False, False]


def test_final_observation_store_is_recycled_and_grows() -> None:
    buffer = ReplayBuffer(capacity=4, num_rows=2, obs_shape=(1,), seed=0)
    start = len(buffer.final_obs)
    # Every step ends an episode on both rows: many more ends than the initial store holds.
    for t in range(50):
        obs = np.full((2, 1), float(t), np.float32)
        buffer.add(obs, np.zeros(2), np.zeros(2), np.ones(2, bool), np.zeros(2, bool), obs + 0.25)
    live = buffer.final_index[buffer.final_index >= 0]
    assert len(live) == 4 and len(set(live.tolist())) == 4  # one entry per stored slot, no sharing
    assert len(buffer.final_obs) >= start
    assert len(buffer.final_obs) <= 8  # recycled: bounded by the slots alive, not by the 100 ends
    batch = buffer.gather(np.array([buffer.pos]), np.array([1]))  # oldest slot
    np.testing.assert_array_equal(batch.next_obs, batch.obs + 0.25)


@pytest.mark.parametrize("n_steps", [1, 2, 3, 5])
def test_nstep_returns_match_compute_nstep_returns(n_steps: int) -> None:
    gamma = 0.9
    rows, steps = 3, 12
    rng = np.random.default_rng(1)
    rewards = rng.normal(size=(steps, rows)).astype(np.float32)
    terminated = np.zeros((steps, rows), bool)
    truncated = np.zeros((steps, rows), bool)
    terminated[3, 0] = True
    truncated[6, 1] = True
    terminated[7, 2] = True
    truncated[8, 0] = True
    buffer = ReplayBuffer(capacity=rows * steps, num_rows=rows, obs_shape=(1,), seed=0)
    obs = rng.normal(size=(steps, rows, 1)).astype(np.float32)
    finals = obs + 10.0
    for t in range(steps):
        buffer.add(obs[t], np.zeros(rows), rewards[t], terminated[t], truncated[t], finals[t])
    # A value function V(x) = 2x makes the bootstrap visible.
    next_obs = np.concatenate([obs[1:], obs[-1:]], axis=0)
    ended = terminated | truncated
    next_obs = np.where(ended[..., None], finals, next_obs)
    next_values = 2.0 * next_obs[..., 0]
    # Only the steps whose next observation is known (all but the newest) can be sampled.
    expected = compute_nstep_returns(rewards[:-1], next_values[:-1], terminated[:-1], truncated[:-1], gamma, n_steps)
    slots, rows_index = np.meshgrid(np.arange(steps - 1), np.arange(rows), indexing="ij")
    batch = buffer.gather(slots.ravel(), rows_index.ravel(), n_steps=n_steps, gamma=gamma)
    target = batch.rewards + batch.discounts * (1 - batch.terminated) * 2.0 * batch.next_obs[:, 0]
    np.testing.assert_allclose(target.reshape(steps - 1, rows), expected, rtol=1e-5, atol=1e-5)
    # Hand-checked entry: row 0 from step 1 with n >= 3 stops at the termination at step 3.
    if n_steps >= 3:
        assert batch.rewards[1 * rows + 0] == pytest.approx(rewards[1, 0] + gamma * rewards[2, 0] + gamma**2 * rewards[3, 0])
        assert batch.terminated[1 * rows + 0]


def test_memory_per_transition() -> None:
    cartpole = ReplayBuffer(100, 1, (4,), (), action_dtype=np.int64)
    assert cartpole.memory_per_transition() == 16 + 8 + 4 + 3 + 4  # 35 bytes
    pendulum = ReplayBuffer(100, 1, (3,), (1,))
    assert pendulum.memory_per_transition() == 12 + 4 + 4 + 3 + 4  # 27 bytes
    assert pendulum.nbytes >= 100 * 27
    atari = ReplayBuffer(100, 1, (4, 84, 84), (), obs_dtype=np.uint8, action_dtype=np.int64)
    assert atari.memory_per_transition() == 4 * 84 * 84 + 19


def test_state_round_trip_is_exact() -> None:
    buffer = ReplayBuffer(capacity=12, num_rows=2, obs_shape=(1,), seed=5)
    fill(buffer, 9, 2, ends={3: "terminated", 7: "truncated"})
    buffer.sample(10)
    copy = ReplayBuffer(capacity=12, num_rows=2, obs_shape=(1,), seed=99)
    copy.load_state_arrays({k: v.copy() for k, v in buffer.state_arrays().items()}, buffer.rng_state())
    a, b = buffer.sample(64, n_steps=2), copy.sample(64, n_steps=2)
    for name in ("obs", "next_obs", "rewards", "terminated", "truncated", "discounts"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    fill(buffer, 3, 2, start=9, ends={10: "terminated"})
    fill(copy, 3, 2, start=9, ends={10: "terminated"})
    np.testing.assert_array_equal(buffer.final_index, copy.final_index)


def test_next_step_autoreset_rows_are_never_sampled() -> None:
    # Gymnasium's native CartPole vector env uses NEXT_STEP autoreset: the step after an end is invalid.
    envs = make_vec_env(lambda seed: gym.make("CartPole-v1"), 4, "CartPole-v1", seed=0)
    worker = SerialWorker(envs)
    buffer = ReplayBuffer(2000, worker.batch_size, (4,), (), action_dtype=np.int64, seed=0)
    collector = Collector(worker, buffer, policy=lambda obs: np.zeros(len(obs), dtype=np.int64))
    collector.reset(seed=0)
    for _ in range(60):
        collector.step()
    assert (~buffer.valid[: buffer.size]).any() and collector.num_episodes > 0
    batch = buffer.sample(5000)
    # Pushing left forever: after the (real) next observation the cart velocity decreases by a fixed step.
    np.testing.assert_allclose(batch.next_obs[:, 1] - batch.obs[:, 1], -0.195, atol=2e-3)
    worker.close()


def test_collector_fresh_versus_buffer_sampling() -> None:
    envs = make_vec_env(lambda seed: gym.make("Pendulum-v1"), 2, "Pendulum-v1", mode="sync", seed=0)
    worker = SerialWorker(envs)
    buffer = ReplayBuffer(1000, 2, (3,), (1,), seed=0)
    collector = Collector(worker, buffer, policy=lambda obs: np.zeros((len(obs), 1), np.float32))
    collector.reset(seed=0)
    fresh = collector.sample(7, from_buffer=False)
    assert len(fresh) == 7 and len(buffer) == 8  # 4 steps of 2 rows were collected and stored
    np.testing.assert_array_equal(fresh.obs[-2:], buffer.obs[3])
    np.testing.assert_array_equal(fresh.next_obs[-2:], collector.obs)
    replay = collector.sample(32, from_buffer=True)
    assert len(replay) == 32 and np.isin(replay.obs[:, 0], buffer.obs[:3, :, 0]).all()
    worker.close()
