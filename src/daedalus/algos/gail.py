"""Generative Adversarial Imitation Learning (GAIL), Ho & Ermon 2016.

A discriminator ``D(s, a) = sigmoid(logit(s, a))`` learns to tell expert transitions (label 1)
from the generator's (label 0) with binary cross-entropy; the generator is PPO, trained on the
reward ``r(s, a) = -log(1 - D(s, a)) = softplus(logit(s, a))`` instead of the env's.

Why ``softplus(logit)`` and not ``logit = log D - log(1 - D)``: it is imitation's convention
(``-log sigmoid(logit_gen_is_high)``), its gradient stays useful while the discriminator is
confident (``log D`` would go to -inf on the generator's samples), and it is never negative. A
positive reward is a survival bonus: it is what makes GAIL learn on CartPole quickly, and it is a
bias on tasks where ending the episode is the goal: ``reward: logit`` (``log D - log(1 - D)``,
either sign) is the unbiased choice there and on fixed-length episodes.

One file, top to bottom in the order the algorithm runs: config → discriminator → agent →
expert data → loss and reward → training (a round: collect with PPO's loop; relabel the rollout's
rewards with the discriminator; PPO update on the relabelled rollout; update the discriminator on
the rollout against expert samples: imitation's order) → registration. The round is
:func:`daedalus.algos.on_policy.train_on_policy` with its relabel point (``reward_fn``) and its
``after_update`` hook; AIRL (:mod:`daedalus.algos.airl`) reuses the agent, the expert data and the round with its own
discriminator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from daedalus.agents.base import TensorAgent
from daedalus.algos.common import (
    custom_loss,
    default_context,
    load_optimizer,
    numpy_rng_state,
    optimizer_tensors,
)
from daedalus.algos.on_policy import ActorCriticAgent, OnPolicyConfig, train_on_policy
from daedalus.algos.ppo import PPOConfig, ppo_loss, ppo_optimizer, ppo_update
from daedalus.buffers.rollout import RolloutBatch
from daedalus.demos import Demonstrations
from daedalus.errors import ProfileError
from daedalus.nn.distributions import action_dim, to_env_actions
from daedalus.nn.networks import ACTIVATIONS, layer_init, mlp
from daedalus.nn.optim import Adam
from daedalus.params import AT_LEAST_ONE, NONNEGATIVE, POSITIVE, param
from daedalus.rollout.contract import Trajectory
from daedalus.specs import AgentSpec
from daedalus.types import TrainContext

__all__ = [
    "AGENT_SPEC",
    "AdversarialAgent",
    "Discriminator",
    "ExpertData",
    "GAILConfig",
    "TransitionBatch",
    "action_features",
    "discriminator_loss",
    "gail_reward",
    "generator_config",
    "gradient_penalty",
    "init_discriminator",
    "load_expert",
    "make_gail_agent",
    "train_adversarial",
    "train_gail",
    "updated_log_probs",
]


# --------------------------------------------------------------------------- config

#: ``disc_init`` choices (see :func:`init_discriminator`).
DISC_INITS = ("orthogonal", "torch")


@dataclass
class GAILConfig(OnPolicyConfig):
    """GAIL: PPO's hyperparameters (the generator) plus the demonstrations and the discriminator.

    PPO's own fields are restated here rather than inherited (one level of inheritance below
    :class:`~daedalus.algos.on_policy.OnPolicyConfig`); a unit test keeps them equal to
    :class:`~daedalus.algos.ppo.PPOConfig`'s.
    """

    # ---- the generator: PPO (same names, defaults and meaning as PPOConfig)
    adam_eps: float = param(1e-5, "Adam epsilon (1e-5 as in the PPO reference code, CleanRL and SB3).", POSITIVE)
    num_minibatches: int = param(4, "Minibatches per epoch; minibatch size = rollout size / num_minibatches.", AT_LEAST_ONE)
    update_epochs: int = param(4, "Passes over each rollout (K epochs in the paper).", AT_LEAST_ONE)
    clip_coef: float = param(0.2, "Clipping range epsilon of the surrogate objective (initial value when anneal_clip).", POSITIVE)
    anneal_clip: bool = param(False, "Clip range schedule: decay clip_coef linearly to 0 over total_steps (SB3's lin_0.2).")
    clip_vloss: bool = param(False, "Clip the value update around the old value estimate (with clip_coef).")
    target_kl: float | None = param(None, "Stop the epochs of an update early once the approximate KL exceeds this; null disables.", POSITIVE)
    # ---- the demonstrations
    demos: str = param("", "Demonstrations folder (daedalus demos record RUN -o DIR), relative to the profile file. Required.")
    num_episodes: int | None = param(None, "Use the first this many demonstration episodes; null: all of them.", AT_LEAST_ONE)
    # ---- the discriminator
    disc_hidden_sizes: list[int] = param([64, 64], "Hidden layer sizes of the discriminator MLP.", AT_LEAST_ONE)
    disc_activation: str = param("tanh", f"Hidden activation of the discriminator: one of {sorted(ACTIVATIONS)}.", choices=sorted(ACTIVATIONS))
    disc_init: str = param(
        "orthogonal",
        "Initial weights of the discriminator: 'orthogonal' (Daedalus's layer_init, as the policy's) or 'torch' (PyTorch's "
        "default nn.Linear init, what imitation's reward nets use).",
        choices=list(DISC_INITS),
    )
    disc_learning_rate: float = param(3e-4, "Adam learning rate of the discriminator.", POSITIVE)
    disc_updates_per_round: int = param(4, "Discriminator gradient steps after each rollout (imitation's n_disc_updates_per_round).", AT_LEAST_ONE)
    disc_batch_size: int = param(256, "Expert transitions per discriminator step, with as many of the rollout's (imitation's demo_batch_size).", AT_LEAST_ONE)
    disc_grad_penalty: float = param(0.0, "Weight of a gradient penalty (Gulrajani et al. 2017) on inputs mixed from expert and generator; 0 disables.", NONNEGATIVE)
    reward: str = param(
        "softplus",
        "What the generator learns from: 'softplus' -log(1 - D) (never negative: a survival bonus, right for envs whose episodes "
        "end early when the agent fails, like CartPole), 'logit' log D - log(1 - D) (either sign: for fixed-length episodes, like Pendulum).",
        choices=["softplus", "logit"],
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.disc_hidden_sizes = [int(size) for size in self.disc_hidden_sizes]


def generator_config(config: Any) -> PPOConfig:
    """The generator's PPO config: the fields of :class:`PPOConfig` taken from ``config``."""
    return PPOConfig(**{f.name: getattr(config, f.name) for f in fields(PPOConfig)})


def check_demos_given(profile: Any) -> None:
    """Profile validation: ``config.demos`` must name the demonstrations (existence is checked when training starts)."""
    if not (profile.config or {}).get("demos"):
        raise profile.fail(
            ("config",), f"agent '{profile.agent_id}' learns from demonstrations and config.demos is not set",
            "Record some with 'daedalus demos record RUN --episodes 10 -o demos/NAME' and set config.demos: demos/NAME.",
        )


# --------------------------------------------------------------------------- discriminator


def action_features(actions: np.ndarray, action_space: spaces.Space[Any]) -> np.ndarray:
    """Actions as the discriminator reads them: one-hot for Discrete (concatenated one-hots for
    MultiDiscrete), values clipped to the bounds for Box (what the env received); float32 ``(rows, dim)``."""
    actions = np.asarray(actions)
    rows = len(actions)
    if isinstance(action_space, spaces.Discrete):
        out = np.zeros((rows, int(action_space.n)), dtype=np.float32)
        out[np.arange(rows), actions.reshape(rows).astype(np.int64) - int(action_space.start)] = 1.0
        return out
    if isinstance(action_space, spaces.MultiDiscrete):
        nvec = action_space.nvec.reshape(-1)
        flat = actions.reshape(rows, -1).astype(np.int64)
        return np.concatenate([np.eye(int(n), dtype=np.float32)[flat[:, i]] for i, n in enumerate(nvec)], axis=1)
    if isinstance(action_space, spaces.Box):
        return np.clip(actions, action_space.low, action_space.high).reshape(rows, -1).astype(np.float32)
    raise TypeError(f"no discriminator features for {type(action_space).__name__} actions")


class Discriminator(nn.Module):
    """``logit(s, a)``: an MLP on the observation and the action features; high means expert."""

    def __init__(self, obs_dim: int, action_space: spaces.Space[Any], hidden_sizes: list[int], activation: str) -> None:
        super().__init__()
        inputs = obs_dim + action_dim(action_space)
        self.trunk = mlp(inputs, hidden_sizes, activation)
        self.head = layer_init(nn.Linear(hidden_sizes[-1] if hidden_sizes else inputs, 1), std=1.0)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch,)`` for preprocessed observations and :func:`action_features`."""
        return self.head(self.trunk(torch.cat([obs, actions], dim=-1))).squeeze(-1)


def init_discriminator(module: nn.Module, how: str) -> nn.Module:
    """``how="torch"``: every ``nn.Linear`` of ``module`` back to PyTorch's default init (from the
    global torch RNG); ``"orthogonal"``: as built (:func:`~daedalus.nn.networks.layer_init`)."""
    if how not in DISC_INITS:
        raise ValueError(f"unknown disc_init {how!r}; choose one of {DISC_INITS}")
    if how == "torch":
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
    return module


# --------------------------------------------------------------------------- agent


class AdversarialAgent(TensorAgent):
    """The generator (a PPO actor-critic that acts) and the discriminator that rewards it.

    Acting is the generator's (:meth:`predict`). Its state is the generator's (``network/*``,
    ``optimizer/*``, ...: a GAIL checkpoint loads into a PPO agent as is) plus
    ``discriminator/*`` and ``discriminator_optimizer/*``.
    """

    def __init__(self, generator: ActorCriticAgent, discriminator: nn.Module, disc_learning_rate: float, seed: int | None) -> None:
        super().__init__(name=generator.algo)
        self.algo = generator.algo
        self.generator = generator
        self.discriminator = discriminator.to(generator.device)
        self.disc_parameters: list[torch.Tensor] = list(self.discriminator.parameters())
        self.disc_optimizer = Adam(self.disc_parameters, lr=disc_learning_rate)
        #: Draws the discriminator's minibatches (its own stream: the generator's RNGs are untouched).
        self.rng = np.random.default_rng(None if seed is None else seed + 1)
        self.num_disc_updates = 0

    # ---- counters the training schedule and the run machinery read: the generator's
    @property
    def global_step(self) -> int:
        """Environment steps so far."""
        return self.generator.global_step

    @property
    def num_episodes(self) -> int:
        """Finished training episodes."""
        return self.generator.num_episodes

    @property
    def num_updates(self) -> int:
        """Generator updates."""
        return self.generator.num_updates

    def predict(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """The generator's env-ready actions for a batch of raw observations."""
        return self.generator.predict(obs, deterministic)

    # ---- state
    def state_tensors(self) -> dict[str, Any]:
        tensors = self.generator.state_tensors()
        tensors.update({f"discriminator/{k}": v for k, v in self.discriminator.state_dict().items()})
        tensors.update(optimizer_tensors("discriminator_optimizer", self.disc_optimizer)[0])
        return tensors

    def state_json(self) -> dict[str, Any]:
        state = self.generator.state_json()
        state["discriminator"] = {
            "num_updates": self.num_disc_updates,
            "optimizer_param_groups": optimizer_tensors("discriminator_optimizer", self.disc_optimizer)[1],
            "rng": numpy_rng_state(self.rng),
        }
        return state

    def load_state(self, tensors: dict[str, Any], state: dict[str, Any]) -> None:
        self.generator.load_state(tensors, state)
        prefix = "discriminator/"
        self.discriminator.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        saved = state.get("discriminator") or {}
        load_optimizer("discriminator_optimizer", self.disc_optimizer, tensors, saved.get("optimizer_param_groups", []))
        if "rng" in saved:
            self.rng.bit_generator.state = saved["rng"]
        self.num_disc_updates = int(saved.get("num_updates", 0))


def make_gail_agent(
    observation_space: spaces.Space[Any],
    action_space: spaces.Space[Any],
    config: GAILConfig | None = None,
    device: str = "cpu",
    seed: int | None = None,
) -> AdversarialAgent:
    """The registered agent factory: a PPO generator and a :class:`Discriminator`."""
    config = config or GAILConfig()
    generator = ActorCriticAgent(
        observation_space, action_space, generator_config(config), device=device, seed=seed, algo="gail", make_optimizer=ppo_optimizer,
    )
    with torch.random.fork_rng(devices=[]):  # seeded weights, the caller's global RNG untouched
        if seed is not None:
            torch.manual_seed(seed + 1)
        discriminator = Discriminator(int(np.prod(generator.obs_shape)), action_space, config.disc_hidden_sizes, config.disc_activation)
        init_discriminator(discriminator, config.disc_init)
    return AdversarialAgent(generator, discriminator, config.disc_learning_rate, seed)


# --------------------------------------------------------------------------- expert data


@dataclass
class TransitionBatch:
    """Transitions as a discriminator reads them (tensors on the agent's device, one row each)."""

    obs: torch.Tensor  #: preprocessed observations, ``(rows, obs_dim)``
    actions: torch.Tensor  #: :func:`action_features`, ``(rows, feature_dim)``
    next_obs: torch.Tensor  #: preprocessed next observations (the real final one where an episode ended)
    terminated: torch.Tensor  #: 1.0 where the episode terminated at this step (not at a truncation)
    log_probs: torch.Tensor  #: ``log pi(a|s)`` under the generator (AIRL's discriminator); zeros when not needed

    def __len__(self) -> int:
        return len(self.obs)

    def index(self, rows: np.ndarray) -> TransitionBatch:
        """The rows ``rows``."""
        picked = torch.as_tensor(rows, device=self.obs.device)
        return TransitionBatch(*(getattr(self, f.name)[picked] for f in fields(self)))


@dataclass
class ExpertData:
    """The expert's transitions, raw (observations as the env gave them, env actions)."""

    obs: np.ndarray
    actions: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    num_episodes: int
    mean_return: float

    def __len__(self) -> int:
        return len(self.actions)

    def batch(self, agent: AdversarialAgent, rows: np.ndarray, with_log_probs: bool) -> TransitionBatch:
        """Transitions ``rows`` as the discriminator reads them, with the generator's current observation
        statistics (and ``log pi(a|s)`` under its current policy when ``with_log_probs``)."""
        generator = agent.generator
        obs, next_obs, actions = generator.preprocess(self.obs[rows]), generator.preprocess(self.next_obs[rows]), self.actions[rows]
        log_probs = policy_log_probs(generator, obs, actions) if with_log_probs else np.zeros(len(rows), np.float32)
        return _to_batch(generator, obs, action_features(actions, generator.action_space), next_obs, self.terminated[rows], log_probs)


def load_expert(config: Any, context: TrainContext, agent: AdversarialAgent) -> ExpertData:
    """Read ``config.demos`` (relative to the profile's folder, then to the working directory) and
    check that it fits the env; every problem is a ProfileError with the fix."""
    if not config.demos:
        raise ProfileError(f"{agent.algo}: config.demos is not set. Record demonstrations with 'daedalus demos record RUN -o DIR'.")
    candidates = [Path(config.demos).expanduser()]
    if not candidates[0].is_absolute():
        candidates = [(context.profile_dir or Path.cwd()) / config.demos, Path.cwd() / config.demos]
    folder = next((c for c in candidates if c.is_dir()), candidates[0])
    demos = Demonstrations.load(folder)
    if config.num_episodes is not None:
        if config.num_episodes > len(demos):
            raise ProfileError(f"{agent.algo}: config.num_episodes is {config.num_episodes} but {folder} holds {len(demos)} episodes. Lower it or record more.")
        demos = demos.take(config.num_episodes)
    generator = agent.generator
    obs_shape = tuple(demos.obs.shape[1:])
    if int(np.prod(obs_shape)) != int(np.prod(generator.obs_shape)):
        raise ProfileError(f"{agent.algo}: the demonstrations in {folder} have observations of shape {obs_shape}, the env {generator.obs_shape}. Record them on this env.")
    space = generator.action_space
    if isinstance(space, spaces.Box) and tuple(demos.actions.shape[1:]) != tuple(space.shape or ()):
        raise ProfileError(f"{agent.algo}: the demonstrations in {folder} have actions of shape {demos.actions.shape[1:]}, the env {space.shape}. Record them on this env.")
    if isinstance(space, spaces.Discrete) and len(demos) and not np.isin(demos.actions, np.arange(space.start, space.start + space.n)).all():
        raise ProfileError(f"{agent.algo}: the demonstrations in {folder} hold actions outside the env's {space}. Record them on this env.")
    steps = demos.transitions()
    return ExpertData(steps.obs, steps.actions, steps.next_obs, steps.terminated, len(demos), demos.mean_return)


def policy_log_probs(generator: ActorCriticAgent, obs: np.ndarray, env_actions: np.ndarray) -> np.ndarray:
    """``log pi(a|s)`` of the generator's current policy for preprocessed ``obs`` and env actions."""
    with torch.no_grad():
        policy_out, _ = generator.network(torch.as_tensor(obs, device=generator.device))
        dist = generator.network.distribution(policy_out)
        actions = torch.as_tensor(np.asarray(env_actions), device=generator.device)
        if isinstance(generator.action_space, spaces.Discrete):
            actions = actions.long() - int(generator.action_space.start)
        elif isinstance(generator.action_space, spaces.Box):
            actions = actions.float().reshape(len(obs), -1)
        return dist.log_prob(actions).cpu().numpy().astype(np.float32)


def rollout_batch(trajectory: Trajectory, agent: AdversarialAgent) -> TransitionBatch:
    """Every row of a rollout (valid or not) as the discriminator reads it; ``log_probs`` are the
    collection policy's (:func:`updated_log_probs` gives the current policy's)."""
    rows = trajectory.num_transitions
    generator = agent.generator
    actions = _env_actions(trajectory, agent)
    return _to_batch(
        generator, trajectory.obs.reshape(rows, -1), action_features(actions, generator.action_space),
        trajectory.next_obs.reshape(rows, -1), trajectory.terminated.reshape(rows), trajectory.extras["log_probs"].reshape(rows),
    )


def updated_log_probs(trajectory: Trajectory, agent: AdversarialAgent) -> torch.Tensor:
    """``log pi(a|s)`` of every row of a rollout under the generator's current policy (after PPO updated it)."""
    obs = trajectory.obs.reshape(trajectory.num_transitions, -1)
    log_probs = policy_log_probs(agent.generator, obs, _env_actions(trajectory, agent))
    return torch.as_tensor(log_probs, device=agent.generator.device)


def _env_actions(trajectory: Trajectory, agent: AdversarialAgent) -> np.ndarray:
    rows = trajectory.num_transitions
    return to_env_actions(trajectory.actions.reshape(rows, *trajectory.actions.shape[2:]), agent.generator.action_space)


def _to_batch(
    generator: ActorCriticAgent, obs: np.ndarray, features: np.ndarray, next_obs: np.ndarray, terminated: np.ndarray, log_probs: np.ndarray,
) -> TransitionBatch:
    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array, dtype=np.float32), device=generator.device)

    return TransitionBatch(tensor(obs), tensor(features), tensor(next_obs), tensor(terminated), tensor(log_probs))


# --------------------------------------------------------------------------- loss and reward


def discriminator_loss(expert_logits: torch.Tensor, generator_logits: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Binary cross-entropy, expert = 1, generator = 0, averaged over both halves of the batch:
    ``(softplus(-l_E).mean() + softplus(l_G).mean()) / 2`` (``-log D`` and ``-log(1 - D)``).
    Metrics: the loss and the fraction of each half classified right (logit > 0 is expert)."""
    loss = 0.5 * (F.softplus(-expert_logits).mean() + F.softplus(generator_logits).mean())
    with torch.no_grad():
        metrics = {
            "disc_loss": loss.detach(),
            "disc_acc_expert": (expert_logits > 0).float().mean(),
            "disc_acc_gen": (generator_logits < 0).float().mean(),
        }
    return loss, metrics


def gradient_penalty(discriminator: Discriminator, expert: TransitionBatch, generated: TransitionBatch, generator: torch.Generator) -> torch.Tensor:
    """``E[(||grad_x logit(x)|| - 1)^2]`` at inputs ``x`` mixed at random between expert and generator
    rows (WGAN-GP, Gulrajani et al. 2017; as in Kostrikov et al.'s DAC): keeps the discriminator smooth."""
    mix = torch.rand((len(expert), 1), generator=generator, device=expert.obs.device)
    obs = (mix * expert.obs + (1 - mix) * generated.obs).requires_grad_(True)
    actions = (mix * expert.actions + (1 - mix) * generated.actions).requires_grad_(True)
    logits = discriminator(obs, actions)
    grads = torch.autograd.grad(logits.sum(), (obs, actions), create_graph=True)
    norm = torch.cat(grads, dim=-1).norm(dim=-1)
    return (norm - 1).square().mean()


def gail_reward(logits: torch.Tensor, kind: str = "softplus") -> torch.Tensor:
    """The generator's reward: ``-log(1 - D) = softplus(logit)`` (``kind="softplus"``, see the module
    docstring) or the logit itself, ``log D - log(1 - D)`` (``kind="logit"``)."""
    if kind == "softplus":
        return F.softplus(logits)
    if kind == "logit":
        return logits
    raise ValueError(f"unknown GAIL reward {kind!r}; choose 'softplus' or 'logit'")


# --------------------------------------------------------------------------- training

#: ``logits(agent, batch) -> (batch,)``: the discriminator's logits, high = expert.
Logits = Callable[[AdversarialAgent, TransitionBatch], torch.Tensor]
#: ``reward(agent, batch) -> (batch,)``: the generator's reward for these transitions.
Reward = Callable[[AdversarialAgent, TransitionBatch], torch.Tensor]


def train_adversarial(
    env_factory: Callable[[int | None], Any],
    agent: AdversarialAgent,
    config: Any,
    artifacts: dict[str, Any],
    save_callback: Callable[..., None] | None,
    context: TrainContext | None,
    *,
    logits: Logits,
    reward: Reward,
    with_log_probs: bool = False,
) -> AdversarialAgent:
    """PPO on learned rewards until ``config.total_steps``: GAIL's and AIRL's round.

    Every rollout: (1) in :func:`train_on_policy`'s relabel point, the rollout's rewards become
    ``reward(agent, rollout)`` under the discriminator the policy was trained against (as imitation
    does); PPO updates on the relabelled rollout; (2) in its ``after_update`` hook, the discriminator
    takes ``config.disc_updates_per_round`` steps of :func:`discriminator_loss` (plus the gradient
    penalty) on ``config.disc_batch_size`` expert transitions and as many of the rollout's, with
    ``log pi(a|s)`` (AIRL) of the updated policy on both halves: imitation's round. Metrics
    are logged as ``<algo>/disc_loss``, ``<algo>/disc_acc_expert``, ``<algo>/disc_acc_gen`` and
    ``<algo>/reward_mean``. ``with_log_probs``: the discriminator needs ``log pi(a|s)`` (AIRL).
    """
    if not isinstance(agent, AdversarialAgent):
        raise ProfileError(f"{getattr(agent, 'algo', 'gail')}: multi-agent profiles (policies:) are not supported; train one policy.")
    context = context or default_context(agent.algo, env_factory, artifacts, save_callback, num_envs=8)
    expert = load_expert(config, context, agent)  # fails before any env is stepped
    artifacts["demonstrations"] = {"episodes": expert.num_episodes, "steps": len(expert), "mean_return": expert.mean_return}
    # Checkpoints hold the whole agent (generator and discriminator); the loop only knows the generator.
    save = context.checkpoint
    context = replace(context, checkpoint=lambda _generator, name, step: save(agent, name, step))
    prefix = agent.algo
    grad_penalty = float(getattr(config, "disc_grad_penalty", 0.0))  # GAIL's option; AIRL has none

    built: dict[str, TransitionBatch] = {}  # the rollout's batch, from relabel to learn_discriminator

    def relabel(trajectory: Trajectory) -> tuple[np.ndarray, dict[str, float]]:
        """(1) The rollout's rewards, from the discriminator its policy was trained against."""
        batch = built["batch"] = rollout_batch(trajectory, agent)
        valid = trajectory.valid.reshape(-1)
        with torch.no_grad():
            rewards = reward(agent, batch).cpu().numpy().astype(np.float32)
        rewards[~valid] = 0.0  # rows where no action was applied
        return rewards.reshape(trajectory.rewards.shape), {f"{prefix}/reward_mean": float(rewards[valid].mean()) if valid.any() else 0.0}

    def learn_discriminator(trajectory: Trajectory) -> dict[str, float]:
        """(2) After the PPO update: the discriminator learns on this rollout against expert samples,
        ``log pi`` (AIRL) from the updated policy for both halves, as in imitation's round."""
        batch = built.pop("batch") if "batch" in built else rollout_batch(trajectory, agent)
        if with_log_probs:
            batch = replace(batch, log_probs=updated_log_probs(trajectory, agent))
        valid = np.flatnonzero(trajectory.valid.reshape(-1))
        collected: list[dict[str, torch.Tensor]] = []
        for _ in range(config.disc_updates_per_round):
            expert_rows = agent.rng.choice(len(expert), config.disc_batch_size, replace=len(expert) < config.disc_batch_size)
            generator_rows = valid[agent.rng.choice(len(valid), config.disc_batch_size, replace=len(valid) < config.disc_batch_size)]
            expert_batch, generator_batch = expert.batch(agent, expert_rows, with_log_probs), batch.index(generator_rows)
            loss, metrics = discriminator_loss(logits(agent, expert_batch), logits(agent, generator_batch))
            if grad_penalty > 0:
                assert isinstance(agent.discriminator, Discriminator), "the gradient penalty needs a GAIL discriminator"
                # the generator agent's torch RNG draws the mixing weights
                penalty = gradient_penalty(agent.discriminator, expert_batch, generator_batch, agent.generator.generator)
                loss = loss + grad_penalty * penalty
                metrics["grad_penalty"] = penalty.detach()
            agent.disc_optimizer.zero_grad()
            loss.backward()
            agent.disc_optimizer.step()
            agent.num_disc_updates += 1
            collected.append(metrics)
        return {f"{prefix}/{key}": float(torch.stack([m[key] for m in collected]).mean()) for key in collected[0]}

    ppo = generator_config(config)
    loss_fn = custom_loss(context, config.loss, ppo_loss)

    def update(generator: ActorCriticAgent, batch: RolloutBatch, progress_remaining: float) -> dict[str, float]:
        clip_coef = ppo.clip_coef * (progress_remaining if ppo.anneal_clip else 1.0)
        metrics = ppo_update(generator, batch, ppo, clip_coef, loss_fn)
        metrics["charts/clip_coef"] = clip_coef
        return metrics

    train_on_policy(env_factory, agent.generator, ppo, artifacts, save_callback, context, update, reward_fn=relabel, after_update=learn_discriminator)
    return agent


def gail_logits(agent: AdversarialAgent, batch: TransitionBatch) -> torch.Tensor:
    """GAIL's discriminator logit ``logit(s, a)``."""
    return agent.discriminator(batch.obs, batch.actions)


def train_gail(
    env_factory: Callable[[int | None], Any],
    agent: AdversarialAgent,
    config: GAILConfig,
    artifacts: dict[str, Any],
    save_callback: Callable[..., None] | None = None,
    context: TrainContext | None = None,
) -> AdversarialAgent:
    """Train ``agent`` with GAIL until ``config.total_steps`` (see :func:`train_adversarial`)."""
    return train_adversarial(
        env_factory, agent, config, artifacts, save_callback, context,
        logits=gail_logits, reward=lambda agent_, batch: gail_reward(gail_logits(agent_, batch), config.reward),
    )


# --------------------------------------------------------------------------- registration

AGENT_SPEC = AgentSpec(
    agent_id="gail",
    agent_factory=make_gail_agent,
    training_wrapper=train_gail,
    description="GAIL: a discriminator on (s, a) gives the reward of a PPO generator",
    config_class=GAILConfig,
    check_profile=check_demos_given,
    action_spaces=("Discrete", "MultiDiscrete", "Box"),
    flat_observations=True,
)
