"""A custom PPO loss by reference: the built-in clipped loss plus a KL penalty.

Profiles name it as ``config: {loss: kl_penalty.py:ppo_with_kl_penalty}``. It is called like
:func:`daedalus.algos.ppo.ppo_loss` (``loss(batch, network, config, clip_coef) -> (loss,
metrics)``); because it is not the built-in loss, PPO runs it through autograd. Its extra
metric ``loss/kl_penalty`` lands in metrics.csv next to the others.
"""

from __future__ import annotations

import torch

from daedalus.algos.ppo import PPOConfig, ppo_loss
from daedalus.buffers.rollout import RolloutBatch
from daedalus.nn.networks import ActorCritic

#: Weight of the KL(old || new) penalty (the "adaptive KL" variant of the PPO paper, fixed here).
KL_COEF = 0.2


def ppo_with_kl_penalty(
    batch: RolloutBatch, network: ActorCritic, config: PPOConfig, clip_coef: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``ppo_loss`` + ``KL_COEF`` * KL(old policy || new policy) on the minibatch."""
    loss, metrics = ppo_loss(batch, network, config, clip_coef)
    policy_out, _ = network(batch.obs)
    logratio = network.distribution(policy_out).log_prob(batch.actions) - batch.logprobs
    kl = ((logratio.exp() - 1) - logratio).mean()  # k3 estimator: unbiased, always >= 0
    metrics["loss/kl_penalty"] = kl.detach()
    return loss + KL_COEF * kl, metrics
