"""Advantage Actor-Critic (A2C), the synchronous variant of Mnih et al. 2016's A3C.

One file, in the order the algorithm runs: config → agent (RMSprop) → loss → update →
training → registration. Rollouts, GAE targets, evaluation and checkpoints are the
on-policy loop shared with PPO (:mod:`daedalus.algos.on_policy`). A2C makes one gradient step
per rollout on the whole batch, with the unclipped policy-gradient objective::

    loss = -mean(A * log_prob) + vf_coef * mean((V - V_target)^2) - ent_coef * mean(entropy)

Defaults are Stable-Baselines3's (n_steps 5, RMSprop lr 7e-4 alpha 0.99 eps 1e-5,
gae_lambda 1.0, no advantage normalization, grad norm 0.5), so results compare directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from gymnasium import spaces

from daedalus.algos.common import custom_loss
from daedalus.algos.on_policy import ActorCriticAgent, OnPolicyConfig, train_on_policy
from daedalus.buffers.rollout import RolloutBatch
from daedalus.nn import policy_gradient
from daedalus.nn.distributions import mask_logits
from daedalus.nn.networks import ActorCritic
from daedalus.nn.optim import Adam, RMSprop
from daedalus.params import AT_LEAST_ONE, POSITIVE, UNIT, Range, param
from daedalus.specs import AgentSpec
from daedalus.types import TrainContext

__all__ = ["AGENT_SPEC", "A2CConfig", "a2c_loss", "a2c_optimizer", "a2c_update", "make_a2c_agent", "train_a2c"]


# --------------------------------------------------------------------------- config

#: RMSprop's smoothing constant: alpha = 1 never updates the (zero) square average and
#: alpha > 1 makes it negative, so within [0, 1).
_SMOOTHING = Range(low=0, high=1, high_open=True)


@dataclass
class A2CConfig(OnPolicyConfig):
    """A2C hyperparameters; fields shared with PPO come from :class:`OnPolicyConfig`."""

    num_steps: int = param(5, "Steps per env copy in each rollout (one gradient step per rollout).", AT_LEAST_ONE)
    learning_rate: float = param(7e-4, "Optimizer learning rate (initial value when anneal_lr).", POSITIVE)
    anneal_lr: bool = param(False, "Decay the learning rate linearly to 0 over total_steps.")
    gae_lambda: float = param(1.0, "GAE lambda; 1.0 gives plain n-step returns, as in the A3C paper.", UNIT)
    norm_adv: bool = param(False, "Normalize advantages over each rollout.")
    use_rms_prop: bool = param(True, "RMSprop (the paper's and SB3's optimizer); false uses Adam.")
    rms_prop_alpha: float = param(0.99, "RMSprop smoothing constant.", _SMOOTHING)
    rms_prop_eps: float = param(1e-5, "RMSprop epsilon (also Adam's when use_rms_prop is false).", POSITIVE)


# --------------------------------------------------------------------------- agent


def a2c_optimizer(parameters: list[torch.Tensor], config: A2CConfig) -> RMSprop | Adam:
    """A2C's optimizer: RMSprop (SB3's and the paper's), or Adam with ``use_rms_prop: false``."""
    if config.use_rms_prop:
        return RMSprop(parameters, lr=config.learning_rate, alpha=config.rms_prop_alpha, eps=config.rms_prop_eps)
    return Adam(parameters, lr=config.learning_rate, eps=config.rms_prop_eps)


def make_a2c_agent(
    observation_space: spaces.Space[Any],
    action_space: spaces.Space[Any],
    config: A2CConfig | None = None,
    device: str = "cpu",
    seed: int | None = None,
    actor_inputs: int | None = None,
) -> ActorCriticAgent:
    """The registered agent factory (arguments are picked by name by the registry); ``actor_inputs``:
    a centralized critic's split of the observation (multi-agent runs)."""
    return ActorCriticAgent(
        observation_space, action_space, config or A2CConfig(), device=device, seed=seed,
        algo="a2c", make_optimizer=a2c_optimizer, actor_inputs=actor_inputs,
    )


# --------------------------------------------------------------------------- loss


def a2c_loss(batch: RolloutBatch, network: ActorCritic, config: A2CConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Policy-gradient + value loss - entropy bonus on the rollout; metrics stay tensors."""
    policy_out, values = network(batch.obs)
    dist = network.distribution(mask_logits(policy_out, batch.masks))
    advantages = batch.advantages
    if config.norm_adv and len(advantages) > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy_loss = -(advantages * dist.log_prob(batch.actions)).mean()
    value_loss = (values - batch.returns).square().mean()
    entropy = dist.entropy().mean()
    loss = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy
    metrics = {"loss/policy": policy_loss.detach(), "loss/value": value_loss.detach(), "loss/entropy": entropy.detach()}
    return loss, metrics


# --------------------------------------------------------------------------- update


def a2c_update(
    agent: ActorCriticAgent,
    batch: RolloutBatch,
    config: A2CConfig,
    loss_fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]] = a2c_loss,
) -> dict[str, float]:
    """One gradient step on the whole rollout; returns the loss metrics."""
    network = agent.network
    closed_form = config.closed_form_gradients and policy_gradient.supports(network) and batch.masks is None
    if loss_fn is a2c_loss and closed_form:
        # Same gradient as autograd on a2c_loss (tests/unit/test_policy_gradient.py), faster.
        metrics = policy_gradient.loss_and_gradients(
            network, batch.obs, batch.actions, batch.logprobs, batch.values, batch.advantages, batch.returns,
            clip_coef=None, vf_coef=config.vf_coef, ent_coef=config.ent_coef, norm_adv=config.norm_adv,
            clip_vloss=False,
        )
        for key in ("loss/total", "loss/approx_kl", "loss/clip_fraction"):
            metrics.pop(key, None)
    else:
        loss, metrics = loss_fn(batch, network, config)
        agent.optimizer.zero_grad()
        loss.backward()
    metrics["loss/grad_norm"] = policy_gradient.clip_grad_norm(agent.parameters, config.max_grad_norm)
    agent.optimizer.step()
    agent.num_updates += 1
    return {key: float(value) for key, value in metrics.items()}


# --------------------------------------------------------------------------- training


def train_a2c(
    env_factory: Callable[[int | None], Any],
    agent: ActorCriticAgent,
    config: A2CConfig,
    artifacts: dict[str, Any],
    save_callback: Callable[..., None] | None = None,
    context: TrainContext | None = None,
) -> ActorCriticAgent:
    """Train ``agent`` with A2C until ``config.total_steps`` (see :func:`train_on_policy`).

    ``config.loss`` names a custom loss (called like :func:`a2c_loss`, run through autograd).
    """
    loss_fn = custom_loss(context, config.loss, a2c_loss)
    train_on_policy(
        env_factory, agent, config, artifacts, save_callback, context,
        # Several policies (a multi-agent PolicySet): each one updates with its own config.
        lambda agent_, batch, progress_remaining: a2c_update(agent_, batch, config if agent_ is agent else agent_.config, loss_fn),  # type: ignore[arg-type]
    )
    return agent


# --------------------------------------------------------------------------- registration

AGENT_SPEC = AgentSpec(
    agent_id="a2c",
    agent_factory=make_a2c_agent,
    training_wrapper=train_a2c,
    description="Advantage Actor-Critic (synchronous A3C), MLP actor-critic",
    config_class=A2CConfig,
    action_spaces=("Discrete", "MultiDiscrete", "Box"),
    flat_observations=True,
)
