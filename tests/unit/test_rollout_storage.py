"""Rollout storage: shapes, final-value bootstrapping, valid masking, minibatches."""

import numpy as np
import torch

from daedalus.buffers import RolloutStorage, minibatch_indices
from daedalus.returns import compute_gae


def fill(storage, rng, valid=None):
    for t in range(storage.num_steps):
        storage.add(
            obs=rng.normal(size=(storage.batch_size, 3)),
            actions=rng.integers(0, 2, size=storage.batch_size),
            logprobs=rng.normal(size=storage.batch_size),
            values=rng.normal(size=storage.batch_size),
            rewards=np.ones(storage.batch_size),
            terminated=np.zeros(storage.batch_size, bool),
            truncated=np.array([t == 1, False]),
            valid=None if valid is None else valid[t],
        )


def test_shapes_and_overflow():
    storage = RolloutStorage(4, 2, (3,), (), action_dtype=np.int64)
    fill(storage, np.random.default_rng(0))
    assert storage.obs.shape == (4, 2, 3) and storage.actions.shape == (4, 2)
    try:
        storage.add(*([np.zeros(2)] * 7))
    except IndexError:
        pass
    else:
        raise AssertionError("adding past num_steps must fail")
    storage.reset()
    assert storage.step == 0


def test_truncated_rows_bootstrap_from_final_values():
    storage = RolloutStorage(4, 2, (3,), (), action_dtype=np.int64)
    rng = np.random.default_rng(0)
    for t in range(4):
        storage.add(rng.normal(size=(2, 3)), np.zeros(2), np.zeros(2), np.full(2, 0.5), np.ones(2),
                    np.zeros(2, bool), np.array([t == 1, False]))
        if t == 1:
            storage.set_final_values(np.array([0]), np.array([7.0]))
    storage.compute_advantages(np.array([1.0, 1.0]), gamma=0.9, gae_lambda=0.95)
    next_values = np.full((4, 2), 0.5, np.float32)
    next_values[-1] = 1.0
    next_values[1, 0] = 7.0  # V(final obs) of the truncated episode, not V(reset obs)
    expected, _ = compute_gae(storage.rewards, storage.values, next_values, storage.terminated,
                              storage.truncated, 0.9, 0.95)
    np.testing.assert_allclose(storage.advantages, expected, rtol=1e-6)


def test_flat_batch_drops_invalid_rows():
    storage = RolloutStorage(3, 2, (3,), (), action_dtype=np.int64)
    valid = np.array([[True, True], [True, False], [True, True]])
    fill(storage, np.random.default_rng(0), valid)
    storage.compute_advantages(np.zeros(2), 0.99, 0.95)
    batch = storage.flat_batch()
    assert len(batch) == 5
    torch.testing.assert_close(batch.obs[3], torch.from_numpy(storage.obs[2, 0]).float())
    full = RolloutStorage(3, 2, (3,), (), action_dtype=np.int64)
    fill(full, np.random.default_rng(0))
    assert len(full.flat_batch()) == 6


def test_minibatch_indices_cover_everything_once():
    generator = torch.Generator().manual_seed(0)
    parts = list(minibatch_indices(10, 3, generator))
    assert [len(p) for p in parts] == [4, 3, 3]
    assert sorted(torch.cat(parts).tolist()) == list(range(10))
