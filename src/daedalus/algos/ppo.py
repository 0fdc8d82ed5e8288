"""Proximal Policy Optimization (clipped objective), Schulman et al. 2017.

One file, top to bottom in the order the algorithm runs (CleanRL's ``ppo.py`` layout):
config → agent (optimizer) → loss → update → training → registration. The rollout loop and
the actor-critic agent are shared with A2C (:mod:`daedalus.algos.on_policy`); below them are
unit-tested pieces: :mod:`daedalus.returns` (GAE), :mod:`daedalus.buffers` (rollout storage),
:mod:`daedalus.nn` (networks, distributions, observation normalization, Adam),
:mod:`daedalus.rollout` (the only place envs are stepped) and the closed-form gradient of the
loss (:mod:`daedalus.nn.policy_gradient`).

To add a loss term, wrap :func:`ppo_loss`: it is a plain function of a batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from gymnasium import spaces

from daedalus.algos.common import custom_loss
from daedalus.algos.on_policy import ActorCriticAgent, OnPolicyConfig, train_on_policy
from daedalus.buffers.rollout import RolloutBatch, minibatch_indices
from daedalus.nn import policy_gradient
from daedalus.nn.distributions import mask_logits
from daedalus.nn.networks import ActorCritic
from daedalus.nn.optim import Adam
from daedalus.params import AT_LEAST_ONE, POSITIVE, param
from daedalus.specs import AgentSpec
from daedalus.types import TrainContext

__all__ = ["AGENT_SPEC", "PPOConfig", "make_ppo_agent", "ppo_loss", "ppo_optimizer", "ppo_update", "train_ppo"]


# --------------------------------------------------------------------------- config


@dataclass
class PPOConfig(OnPolicyConfig):
    """PPO hyperparameters (paper / CleanRL vocabulary). Profiles set them under ``config:``.

    The fields shared with A2C (rollouts, network, evaluation, checkpoints) come from
    :class:`~daedalus.algos.on_policy.OnPolicyConfig`.
    """

    adam_eps: float = param(1e-5, "Adam epsilon (1e-5 as in the PPO reference code, CleanRL and SB3).", POSITIVE)
    num_minibatches: int = param(4, "Minibatches per epoch; minibatch size = rollout size / num_minibatches.", AT_LEAST_ONE)
    update_epochs: int = param(4, "Passes over each rollout (K epochs in the paper).", AT_LEAST_ONE)
    clip_coef: float = param(0.2, "Clipping range epsilon of the surrogate objective (initial value when anneal_clip).", POSITIVE)
    anneal_clip: bool = param(False, "Clip range schedule: decay clip_coef linearly to 0 over total_steps (SB3's lin_0.2).")
    clip_vloss: bool = param(False, "Clip the value update around the old value estimate (with clip_coef).")
    target_kl: float | None = param(None, "Stop the epochs of an update early once the approximate KL exceeds this; null disables.", POSITIVE)


# --------------------------------------------------------------------------- agent


def ppo_optimizer(parameters: list[torch.Tensor], config: PPOConfig) -> Adam:
    """PPO's optimizer: Adam on the actor-critic (one fused kernel per step, no torch.optim import cost)."""
    return Adam(parameters, lr=config.learning_rate, eps=config.adam_eps)


def make_ppo_agent(
    observation_space: spaces.Space[Any],
    action_space: spaces.Space[Any],
    config: PPOConfig | None = None,
    device: str = "cpu",
    seed: int | None = None,
    actor_inputs: int | None = None,
) -> ActorCriticAgent:
    """The registered agent factory (arguments are picked by name by the registry); ``actor_inputs``:
    a centralized critic's split of the observation (multi-agent runs)."""
    return ActorCriticAgent(
        observation_space, action_space, config or PPOConfig(), device=device, seed=seed,
        algo="ppo", make_optimizer=ppo_optimizer, actor_inputs=actor_inputs,
    )


# --------------------------------------------------------------------------- loss


def ppo_loss(
    batch: RolloutBatch, network: ActorCritic, config: PPOConfig, clip_coef: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate + value loss - entropy bonus on one minibatch; metrics stay tensors."""
    policy_out, new_values = network(batch.obs)
    dist = network.distribution(mask_logits(policy_out, batch.masks))
    new_logprobs = dist.log_prob(batch.actions)
    entropy = dist.entropy().mean()
    logratio = new_logprobs - batch.logprobs
    ratio = logratio.exp()

    advantages = batch.advantages
    if config.norm_adv and len(advantages) > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

    # Pessimistic bound: the max of the two *losses* is the min of the two objectives.
    policy_loss = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()

    if config.clip_vloss:
        clipped_values = batch.values + (new_values - batch.values).clamp(-clip_coef, clip_coef)
        value_loss = torch.max((new_values - batch.returns).square(), (clipped_values - batch.returns).square()).mean()
    else:
        value_loss = (new_values - batch.returns).square().mean()

    loss = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy
    with torch.no_grad():
        # k3 estimator of KL(old || new), low variance and always >= 0 (Schulman's blog).
        approx_kl = ((ratio - 1) - logratio).mean()
        clip_fraction = ((ratio - 1).abs() > clip_coef).float().mean()
    metrics = {
        "loss/policy": policy_loss.detach(),
        "loss/value": value_loss.detach(),
        "loss/entropy": entropy.detach(),
        "loss/approx_kl": approx_kl,
        "loss/clip_fraction": clip_fraction,
    }
    return loss, metrics


# --------------------------------------------------------------------------- update


def ppo_update(
    agent: ActorCriticAgent,
    batch: RolloutBatch,
    config: PPOConfig,
    clip_coef: float,
    loss_fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]] = ppo_loss,
) -> dict[str, float]:
    """``update_epochs`` passes of minibatch gradient steps; returns averaged metrics."""
    parameters = agent.parameters
    # The built-in loss on an MLP actor-critic has a closed-form gradient that is several
    # times faster than autograd on a CPU (see nn/policy_gradient.py); a custom loss_fn
    # or another network goes through autograd.
    closed_form = (
        loss_fn is ppo_loss and config.closed_form_gradients and policy_gradient.supports(agent.network) and batch.masks is None
    )
    collected: list[dict[str, torch.Tensor]] = []
    norm_adv = config.norm_adv
    if norm_adv and config.num_minibatches == 1 and len(batch) > 1:
        # One minibatch: normalizing once here is the same as once per epoch.
        advantages = batch.advantages
        batch = replace(batch, advantages=(advantages - advantages.mean()) / (advantages.std() + 1e-8))
        norm_adv = False
    stop = False
    for epoch in range(config.update_epochs):
        # Loss metrics are reported for the last epoch's minibatches only: computing them for
        # every minibatch costs a dozen small ops each and the numbers are only logged.
        last_epoch = epoch == config.update_epochs - 1
        # One minibatch is the whole batch: its order does not change the gradient.
        if config.num_minibatches == 1:
            minibatches = [batch]
        else:
            minibatches = [batch.index(i) for i in minibatch_indices(len(batch), config.num_minibatches, agent.generator)]
        for minibatch in minibatches:
            if closed_form:
                metrics = policy_gradient.loss_and_gradients(
                    agent.network, minibatch.obs, minibatch.actions, minibatch.logprobs, minibatch.values,
                    minibatch.advantages, minibatch.returns, clip_coef=clip_coef, vf_coef=config.vf_coef,
                    ent_coef=config.ent_coef, norm_adv=norm_adv, clip_vloss=config.clip_vloss,
                    with_metrics=last_epoch,
                )
                metrics.pop("loss/total", None)
            else:
                loss, metrics = loss_fn(minibatch, agent.network, replace(config, norm_adv=norm_adv), clip_coef)
                agent.optimizer.zero_grad()
                loss.backward()
                if not last_epoch:  # report what the closed-form path reports: last epoch's metrics
                    metrics = {k: v for k, v in metrics.items() if k == "loss/approx_kl"}
            metrics["loss/grad_norm"] = policy_gradient.clip_grad_norm(parameters, config.max_grad_norm)
            agent.optimizer.step()
            collected.append(metrics)
            # .item() is a sync point on GPU: only pay for it when early stopping is on.
            if config.target_kl is not None and "loss/approx_kl" in metrics and metrics["loss/approx_kl"].item() > config.target_kl:
                stop = True
                break
        if stop:
            break
    agent.num_updates += 1
    # One stack per metric at the end instead of a float conversion per minibatch.
    keys = dict.fromkeys(key for m in collected for key in m)  # ordered union
    averaged = {key: float(torch.stack([m[key] for m in collected if key in m]).mean()) for key in keys}
    with torch.no_grad():
        predicted, returns = batch.values, batch.returns
        variance = returns.var()
        averaged["loss/explained_variance"] = float(1 - (returns - predicted).var() / variance) if variance > 0 else float("nan")
    averaged["loss/early_stop"] = float(stop)
    return averaged


# --------------------------------------------------------------------------- training


def train_ppo(
    env_factory: Callable[[int | None], Any],
    agent: ActorCriticAgent,
    config: PPOConfig,
    artifacts: dict[str, Any],
    save_callback: Callable[..., None] | None = None,
    context: TrainContext | None = None,
) -> ActorCriticAgent:
    """Train ``agent`` with PPO until ``config.total_steps`` (continues from ``agent.global_step``).

    ``context`` (from the run machinery) provides the vector-env settings, the metric logger,
    the progress display and the checkpoint callback. Without it (a Crete-style call) 8 sync
    envs are built from ``env_factory`` and checkpoints go through ``save_callback``.
    Writes ``artifacts["evaluations"]`` (step, mean_return, std_return, train_seconds) and
    ``artifacts["time_split"]`` (seconds in env / inference / learn).
    """

    # A custom loss (config.loss, called like ppo_loss) runs through autograd; ppo_update uses
    # the hand-derived gradient only for ppo_loss itself.
    loss_fn = custom_loss(context, config.loss, ppo_loss)

    def update(agent_: ActorCriticAgent, batch: RolloutBatch, progress_remaining: float) -> dict[str, float]:
        # Several policies (a multi-agent PolicySet): each one updates with its own config.
        own: PPOConfig = config if agent_ is agent else agent_.config  # type: ignore[assignment]
        # Clip range schedule (SB3's lin_0.2) when anneal_clip.
        clip_coef = own.clip_coef * (progress_remaining if own.anneal_clip else 1.0)
        metrics = ppo_update(agent_, batch, own, clip_coef, loss_fn)
        metrics["charts/clip_coef"] = clip_coef
        return metrics

    train_on_policy(env_factory, agent, config, artifacts, save_callback, context, update)
    return agent


# --------------------------------------------------------------------------- registration

AGENT_SPEC = AgentSpec(
    agent_id="ppo",
    agent_factory=make_ppo_agent,
    training_wrapper=train_ppo,
    description="Proximal Policy Optimization (clipped), MLP actor-critic",
    config_class=PPOConfig,
    action_spaces=("Discrete", "MultiDiscrete", "Box"),
    flat_observations=True,
)
