"""The closed-form actor-critic gradients agree with autograd on the same loss."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from gymnasium import spaces

from daedalus.algos.ppo import PPOConfig, ppo_loss
from daedalus.buffers.rollout import RolloutBatch
from daedalus.nn.networks import ActorCritic
from daedalus.nn.policy_gradient import clip_grad_norm, loss_and_gradients, supports


def _batch(space: spaces.Space, n: int, seed: int) -> RolloutBatch:
    gen = torch.Generator().manual_seed(seed)
    if isinstance(space, spaces.Discrete):
        actions = torch.randint(0, int(space.n), (n,), generator=gen)
    else:
        actions = torch.randn(n, int(np.prod(space.shape)), generator=gen)
    return RolloutBatch(
        obs=torch.randn(n, 5, generator=gen),
        actions=actions,
        logprobs=torch.randn(n, generator=gen) * 0.3 - 1.0,
        values=torch.randn(n, generator=gen),
        advantages=torch.randn(n, generator=gen),
        returns=torch.randn(n, generator=gen),
    )


CASES = list(
    itertools.product(
        [spaces.Discrete(3), spaces.Box(-1, 1, (2,))],
        ["tanh", "relu"],
        [False, True],  # shared trunk
        [False, True],  # clip_vloss
        [0.2, None],  # PPO, A2C
    )
)


@pytest.mark.parametrize(("space", "activation", "shared", "clip_vloss", "clip"), CASES)
def test_gradients_match_autograd(space: spaces.Space, activation: str, shared: bool, clip_vloss: bool, clip: float | None) -> None:
    torch.manual_seed(0)
    network = ActorCritic(5, space, [16, 8], activation, shared_trunk=shared, log_std_init=-0.3)
    assert supports(network)
    batch = _batch(space, 64, seed=1)
    config = PPOConfig(clip_vloss=clip_vloss and clip is not None, ent_coef=0.01, vf_coef=0.7, norm_adv=True)
    if clip is None:
        # A2C: -A * log_prob, no ratio; reproduce it with autograd directly.
        policy_out, values = network(batch.obs)
        dist = network.distribution(policy_out)
        adv = (batch.advantages - batch.advantages.mean()) / (batch.advantages.std() + 1e-8)
        loss = -(adv * dist.log_prob(batch.actions)).mean() + 0.7 * (values - batch.returns).square().mean() - 0.01 * dist.entropy().mean()
    else:
        loss, _ = ppo_loss(batch, network, config, clip)
    network.zero_grad()
    loss.backward()
    expected = {name: p.grad.clone() for name, p in network.named_parameters()}

    metrics = loss_and_gradients(
        network, batch.obs, batch.actions, batch.logprobs, batch.values, batch.advantages, batch.returns,
        clip_coef=clip, vf_coef=0.7, ent_coef=0.01, norm_adv=True, clip_vloss=config.clip_vloss,
    )
    assert float(metrics["loss/total"]) == pytest.approx(float(loss.detach()), rel=1e-5, abs=1e-6)
    for name, p in network.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-4, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")


def test_clipped_samples_get_no_policy_gradient() -> None:
    """A sample whose ratio left the clip range in the advantage's direction contributes nothing."""
    torch.manual_seed(0)
    network = ActorCritic(5, spaces.Discrete(2), [8], "tanh")
    batch = _batch(spaces.Discrete(2), 1, seed=3)
    batch.advantages.fill_(1.0)
    with torch.no_grad():
        logits, _ = network(batch.obs)
        logp = (logits - logits.logsumexp(-1, keepdim=True)).gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
    batch.logprobs.copy_(logp - 0.5)  # ratio = e^0.5 > 1.2 with a positive advantage: clipped
    loss_and_gradients(network, batch.obs, batch.actions, batch.logprobs, batch.values, batch.advantages, batch.returns,
                       clip_coef=0.2, vf_coef=0.0, ent_coef=0.0, norm_adv=False, clip_vloss=False)
    assert torch.count_nonzero(network.actor_head.weight.grad) == 0


def test_clip_grad_norm_matches_torch() -> None:
    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(3, 4)) for _ in range(3)]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    for p, q in zip(a, b, strict=True):
        p.grad = torch.randn(3, 4) * 5
        q.grad = p.grad.clone()
    expected = torch.nn.utils.clip_grad_norm_(a, 0.5)
    got = clip_grad_norm(b, 0.5)
    torch.testing.assert_close(got, expected)
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(q.grad, p.grad)
