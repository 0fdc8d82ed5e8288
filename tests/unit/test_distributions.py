"""Action distributions against torch.distributions and hand values."""

import math

import numpy as np
import torch
from gymnasium import spaces

from daedalus.nn.distributions import (
    Categorical,
    DiagGaussian,
    MultiCategorical,
    action_dim,
    to_env_actions,
)


def test_categorical_matches_torch():
    logits = torch.randn(5, 3)
    actions = torch.tensor([0, 1, 2, 1, 0])
    ours, ref = Categorical(logits), torch.distributions.Categorical(logits=logits)
    torch.testing.assert_close(ours.log_prob(actions), ref.log_prob(actions))
    torch.testing.assert_close(ours.entropy(), ref.entropy())
    assert torch.equal(ours.mode(), logits.argmax(-1))


def test_categorical_sample_frequencies():
    probs = torch.tensor([0.1, 0.6, 0.3])
    dist = Categorical(probs.log().expand(20000, 3))
    counts = torch.bincount(dist.sample(torch.Generator().manual_seed(0)), minlength=3).float() / 20000
    torch.testing.assert_close(counts, probs, atol=0.02, rtol=0)


def test_uniform_categorical_entropy_is_log_n():
    assert math.isclose(Categorical(torch.zeros(1, 4)).entropy().item(), math.log(4), rel_tol=1e-6)


def test_gaussian_matches_torch():
    mean, log_std = torch.randn(4, 2), torch.randn(2)
    actions = torch.randn(4, 2)
    ours = DiagGaussian(mean, log_std)
    ref = torch.distributions.Normal(mean, log_std.exp().expand_as(mean))
    torch.testing.assert_close(ours.log_prob(actions), ref.log_prob(actions).sum(-1))
    torch.testing.assert_close(ours.entropy(), ref.entropy().sum(-1))
    assert torch.equal(ours.mode(), mean)
    samples = DiagGaussian(torch.zeros(50000, 1), torch.tensor([math.log(2.0)])).sample(torch.Generator().manual_seed(0))
    assert abs(samples.std().item() - 2.0) < 0.05


def test_multicategorical_sums_parts():
    logits = torch.randn(3, 5)
    actions = torch.tensor([[0, 1], [1, 2], [1, 0]])
    dist = MultiCategorical(logits, [2, 3])
    expected = Categorical(logits[:, :2]).log_prob(actions[:, 0]) + Categorical(logits[:, 2:]).log_prob(actions[:, 1])
    torch.testing.assert_close(dist.log_prob(actions), expected)
    assert dist.sample().shape == (3, 2) and dist.mode().shape == (3, 2)
    torch.testing.assert_close(dist.entropy(), Categorical(logits[:, :2]).entropy() + Categorical(logits[:, 2:]).entropy())


def test_action_dim_and_env_clipping():
    box = spaces.Box(-2.0, 2.0, (1,), np.float32)
    assert action_dim(spaces.Discrete(3)) == 3
    assert action_dim(spaces.MultiDiscrete([2, 3])) == 5
    assert action_dim(box) == 1
    np.testing.assert_array_equal(to_env_actions(np.array([[3.0], [-0.5]]), box), [[2.0], [-0.5]])
    assert to_env_actions(np.array([5]), spaces.Discrete(3))[0] == 5
