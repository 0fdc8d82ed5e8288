"""Behaviour cloning: fit a policy to demonstrations by maximum likelihood (imitation's ``BC``).

One file, in the order the algorithm runs: config → data (demonstrations as a dataset) → policy
(the actor of :class:`~daedalus.algos.on_policy.ActorCriticAgent`, so that a cloned policy is a
PPO policy and the other way round) → loss → update → training → registration.

The loss is imitation's::

    loss = -mean log pi(a | s)  -  ent_weight * mean H(pi(. | s))  +  l2_weight * ||theta||^2 / 2

over minibatches drawn from the demonstrations (``theta``: the policy's weights, log-std
included; the half makes the gradient ``l2_weight * theta``, as in imitation). ``total_steps``
counts *gradient steps*, so logging, evaluation and checkpoints are scheduled in gradient steps.

Public pieces other imitation algorithms use (DAgger, GAIL/AIRL's BC pre-training):
:func:`make_bc_agent`, :func:`policy_output`, :func:`policy_parameters`, :func:`bc_loss`,
:func:`bc_update`, :class:`BCBatch`, :class:`BCDataset` and :func:`load_demonstrations`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import torch
from gymnasium import spaces

from daedalus.algos.common import (
    TrainingSchedule,
    default_context,
    restore_torch_threads,
    set_torch_threads,
)
from daedalus.algos.on_policy import ActorCriticAgent
from daedalus.demos import Demonstrations
from daedalus.errors import DaedalusError
from daedalus.nn.networks import ACTIVATIONS, ActorCritic
from daedalus.nn.optim import Adam
from daedalus.params import AT_LEAST_ONE, NONNEGATIVE, POSITIVE, param
from daedalus.specs import AgentSpec
from daedalus.types import TrainContext

__all__ = [
    "AGENT_SPEC",
    "BCBatch",
    "BCConfig",
    "BCDataset",
    "PolicyFitConfig",
    "bc_loss",
    "bc_optimizer",
    "bc_update",
    "load_demonstrations",
    "make_bc_agent",
    "policy_output",
    "policy_parameters",
    "train_bc",
]


# --------------------------------------------------------------------------- config


@dataclass
class PolicyFitConfig:
    """What BC and DAgger share: the policy network, the BC loss and optimizer, evaluation and bookkeeping.

    Intervals (``eval_every_steps``, ...) are in the algorithm's steps: gradient steps for BC,
    expert-labelled env steps for DAgger.
    """

    #: The actor-critic reads it; a cloned policy has separate actor and critic trunks (the critic is unused).
    shared_trunk: ClassVar[bool] = False

    demos: str | None = param(
        None,
        "Demonstrations (bc: required; dagger: optional initial data): a folder from 'daedalus demos record', an "
        "imitation / rl-zoo .npz file or folder of them, or a Minari dataset. A relative path is relative to the profile's folder.",
    )
    num_episodes: int | None = param(None, "Use only the first N episodes of the demonstrations; null uses all.", AT_LEAST_ONE)
    batch_size: int = param(64, "Demonstration steps per gradient step (drawn uniformly, with replacement).", AT_LEAST_ONE)
    learning_rate: float = param(1e-3, "Adam learning rate (imitation's BC default).", POSITIVE)
    ent_weight: float = param(1e-3, "Weight of the entropy bonus in the loss (imitation's default 1e-3).", NONNEGATIVE)
    l2_weight: float = param(0.0, "Weight of the L2 penalty ||theta||^2 / 2 on the policy's weights (imitation's default 0).", NONNEGATIVE)
    hidden_sizes: list[int] = param([64, 64], "Hidden layer sizes of the policy MLP (same network as PPO's actor).", AT_LEAST_ONE)
    activation: str = param("tanh", f"Hidden activation: one of {sorted(ACTIVATIONS)}.", choices=sorted(ACTIVATIONS))
    log_std_init: float = param(0.0, "Initial log standard deviation of the Gaussian policy (Box actions).")
    normalize_obs: bool = param(False, "Normalize observations with the mean/std of the training data (saved with the agent).")
    obs_clip: float = param(10.0, "Clip normalized observations to [-obs_clip, obs_clip].", POSITIVE)
    eval_every_steps: int = param(1_000, "Evaluate on separate env copies every this many steps; 0 disables.", NONNEGATIVE)
    eval_episodes: int = param(10, "Episodes per periodic evaluation.", AT_LEAST_ONE)
    eval_deterministic: bool = param(True, "Evaluate with the policy's mode instead of sampling.")
    final_eval_episodes: int = param(20, "Episodes of the evaluation run when training completes (written to eval.json); 0 disables.", NONNEGATIVE)
    target_return: float | None = param(None, "Stop training once a periodic evaluation's mean return reaches this; null disables.")
    checkpoint_every_steps: int = param(0, "Write a checkpoint step-<N> every this many steps; 0 disables.", NONNEGATIVE)
    keep_last: int = param(3, "Periodic checkpoints to keep (older ones are deleted by the run store).", NONNEGATIVE)
    log_every_steps: int = param(100, "Log metrics every this many steps.", AT_LEAST_ONE)
    torch_threads: int = param(1, "torch CPU threads while training; 0 keeps torch's default.", NONNEGATIVE)

    def __post_init__(self) -> None:
        self.hidden_sizes = [int(size) for size in self.hidden_sizes]


@dataclass
class BCConfig(PolicyFitConfig):
    """Behaviour cloning hyperparameters. Profiles set them under ``config:``."""

    total_steps: int = param(5_000, "Gradient steps to train for (not env steps: BC never steps the env).", AT_LEAST_ONE)


# --------------------------------------------------------------------------- data


def load_demonstrations(ref: str, profile_dir: Path | None, num_episodes: int | None = None) -> Demonstrations:
    """Demonstrations named by a config: a path relative to the profile's folder (else the working
    directory), in any format :meth:`Demonstrations.from_dataset` reads; the first ``num_episodes``."""
    path = Path(ref).expanduser()
    candidates = [path] if path.is_absolute() else [p for p in ((profile_dir or Path.cwd()) / path, Path.cwd() / path)]
    found = next((p for p in candidates if p.exists()), None)
    if found is None:
        tried = ", ".join(str(p) for p in dict.fromkeys(candidates))
        raise DaedalusError(
            f"demos '{ref}' not found (tried {tried}). Record demonstrations with "
            f"'daedalus demos record RUN --episodes N -o {ref}', or fix the path (relative to the profile's folder)."
        )
    demos = Demonstrations.from_dataset(found)
    if num_episodes is not None:
        if num_episodes > len(demos):
            raise DaedalusError(f"num_episodes: {found} holds {len(demos)} episodes, fewer than the {num_episodes} asked for.")
        demos = demos.take(num_episodes)
    demos.info = {**demos.info, "path": str(found.resolve())}
    return demos


class BCDataset:
    """(observation, action) pairs in preallocated arrays; grows up to ``capacity`` (DAgger aggregates into it).

    Observations are kept raw (flat float32) and preprocessed per minibatch, so that observation
    statistics may change while the data grows. Actions are kept as the network's targets: class
    indices (int64) for Discrete / MultiDiscrete spaces, float32 vectors for Box spaces.
    """

    def __init__(self, observation_space: spaces.Space[Any], action_space: spaces.Space[Any], capacity: int) -> None:
        self.obs_dim = int(np.prod(observation_space.shape or ()))
        self.action_space = action_space
        discrete = isinstance(action_space, spaces.Discrete | spaces.MultiDiscrete)
        self.action_shape: tuple[int, ...] = () if isinstance(action_space, spaces.Discrete) else (int(np.prod(action_space.shape or ())),)
        self.obs = np.empty((capacity, self.obs_dim), dtype=np.float32)
        self.actions = np.empty((capacity, *self.action_shape), dtype=np.int64 if discrete else np.float32)
        self.size = 0

    def add(self, obs: np.ndarray, actions: np.ndarray) -> None:
        """Append rows (observations as the env gives them, actions as the env takes them)."""
        rows = len(obs)
        if self.size + rows > len(self.obs):
            raise ValueError(f"BCDataset: {self.size} + {rows} rows exceed the capacity {len(self.obs)}")
        obs = np.asarray(obs)
        if int(np.prod(obs.shape[1:])) != self.obs_dim:
            raise DaedalusError(
                f"demonstrations have observations of shape {tuple(obs.shape[1:])}, but the env's are {self.obs_dim} numbers "
                "(flattened); record them on the same env (with the same wrappers)."
            )
        actions = np.asarray(actions).reshape(rows, *self.action_shape)
        if isinstance(self.action_space, spaces.Discrete):
            low, high = int(self.action_space.start), int(self.action_space.start + self.action_space.n)
            if rows and (actions.min() < low or actions.max() >= high):
                raise DaedalusError(f"demonstration actions lie in [{actions.min()}, {actions.max()}], outside the env's {self.action_space}.")
        self.obs[self.size : self.size + rows] = obs.reshape(rows, -1)
        self.actions[self.size : self.size + rows] = actions
        self.size += rows

    @classmethod
    def from_demos(cls, demos: Demonstrations, observation_space: spaces.Space[Any], action_space: spaces.Space[Any], capacity: int | None = None) -> BCDataset:
        """Every step of ``demos`` (the observation each action was taken in), room for ``capacity`` rows in all."""
        transitions = demos.transitions()
        dataset = cls(observation_space, action_space, max(capacity or 0, len(transitions)))
        dataset.add(transitions.obs, transitions.actions)
        return dataset

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A minibatch drawn uniformly with replacement (raw observations, targets)."""
        index = rng.integers(0, self.size, size=batch_size)
        return self.obs[index], self.actions[index]


# --------------------------------------------------------------------------- policy


def bc_optimizer(network: ActorCritic, config: PolicyFitConfig) -> Adam:
    """Adam on the policy's weights only (the critic of the shared network gets no gradient from BC)."""
    return Adam(policy_parameters(network), lr=config.learning_rate)


def make_bc_agent(
    observation_space: spaces.Space[Any],
    action_space: spaces.Space[Any],
    config: PolicyFitConfig | None = None,
    device: str = "cpu",
    seed: int | None = None,
    algo: str = "bc",
) -> ActorCriticAgent:
    """The registered agent factory: PPO's actor-critic agent (predict, save, load) whose optimizer
    holds the actor only. Its weights load into a PPO agent of the same sizes and the other way round."""
    config = config or BCConfig()
    # ActorCriticAgent reads the network fields, normalize_obs and obs_clip, which PolicyFitConfig has.
    agent = ActorCriticAgent(
        observation_space, action_space, cast(Any, config), device=device, seed=seed, algo=algo,
        make_optimizer=lambda parameters, _config: None,
    )
    agent.optimizer = bc_optimizer(agent.network, config)
    return agent


def policy_output(network: ActorCritic, obs: torch.Tensor) -> torch.Tensor:
    """The actor's output (logits, or the Gaussian mean) without running the critic."""
    if network.actor_inputs is not None:
        obs = obs[:, : network.actor_inputs]
    return cast(torch.Tensor, network.actor_head(network.actor_trunk(obs)))


def policy_parameters(network: ActorCritic) -> list[torch.Tensor]:
    """The weights that define pi: actor trunk, actor head and the Gaussian log-std (not the critic)."""
    parameters: list[torch.Tensor] = [*network.actor_trunk.parameters(), *network.actor_head.parameters()]
    if network.log_std is not None:
        parameters.append(network.log_std)
    return parameters


# --------------------------------------------------------------------------- loss


@dataclass
class BCBatch:
    """A minibatch: preprocessed observations and the actions to imitate (class indices or vectors)."""

    obs: torch.Tensor
    actions: torch.Tensor


def bc_loss(batch: BCBatch, network: ActorCritic, ent_weight: float, l2_weight: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """imitation's BC loss on one minibatch: ``neglogp - ent_weight * entropy + l2_weight * l2``.

    ``neglogp`` is the mean negative log-likelihood of the actions, ``entropy`` the mean entropy
    of the policy and ``l2`` = ``||theta||^2 / 2`` over :func:`policy_parameters`. Metrics stay tensors:
    ``bc/loss``, ``bc/neglogp``, ``bc/entropy``, ``bc/l2`` and (Discrete, MultiDiscrete) ``bc/accuracy``,
    the fraction of steps whose most likely action is the demonstrated one.
    """
    policy_out = policy_output(network, batch.obs)
    dist = network.distribution(policy_out)
    neglogp = -dist.log_prob(batch.actions).mean()
    entropy = dist.entropy().mean()
    l2 = sum(p.square().sum() for p in policy_parameters(network)) / 2
    loss = neglogp - ent_weight * entropy + l2_weight * l2
    metrics = {"bc/loss": loss.detach(), "bc/neglogp": neglogp.detach(), "bc/entropy": entropy.detach(), "bc/l2": torch.as_tensor(l2).detach()}
    if network.log_std is None:
        with torch.no_grad():
            correct = dist.mode() == batch.actions
            metrics["bc/accuracy"] = (correct.all(-1) if correct.dim() > 1 else correct).float().mean()
    return loss, metrics


# --------------------------------------------------------------------------- update


def bc_update(agent: ActorCriticAgent, dataset: BCDataset, config: PolicyFitConfig, steps: int = 1) -> dict[str, torch.Tensor]:
    """``steps`` gradient steps on minibatches of ``dataset``; the metrics of the last one (tensors)."""
    metrics: dict[str, torch.Tensor] = {}
    for _ in range(steps):
        obs, actions = dataset.sample(config.batch_size, agent.rng)
        batch = BCBatch(torch.from_numpy(agent.preprocess(obs)).to(agent.device), torch.from_numpy(actions).to(agent.device))
        loss, metrics = bc_loss(batch, agent.network, config.ent_weight, config.l2_weight)
        agent.optimizer.zero_grad()
        loss.backward()
        agent.optimizer.step()
        agent.num_updates += 1
    return metrics


def fit_observation_statistics(agent: ActorCriticAgent, obs: np.ndarray) -> None:
    """With ``normalize_obs``: add ``obs`` to the running statistics the policy normalizes with."""
    if agent.obs_rms is not None and len(obs):
        agent.obs_rms.update(np.asarray(obs, dtype=np.float32).reshape(len(obs), -1))


class NoCollection:
    """The timing a schedule reads when nothing steps an env while training (BC)."""

    env_time = 0.0
    inference_time = 0.0


# --------------------------------------------------------------------------- training


def train_bc(
    env_factory: Callable[[int | None], Any],
    agent: ActorCriticAgent,
    config: BCConfig,
    artifacts: dict[str, Any],
    save_callback: Callable[..., None] | None = None,
    context: TrainContext | None = None,
) -> ActorCriticAgent:
    """Clone ``config.demos`` into ``agent`` for ``config.total_steps`` gradient steps (continues from ``agent.global_step``).

    The env is only used to evaluate. Writes ``artifacts["demos"]`` (path, episodes, steps,
    mean return), ``artifacts["evaluations"]`` and ``artifacts["time_split"]``.
    """
    context = context or default_context("bc", env_factory, artifacts, save_callback)
    if config.demos is None:
        raise DaedalusError("bc: config.demos is required: the demonstrations to clone (see docs/imitation.md).")
    demos = load_demonstrations(config.demos, context.profile_dir, config.num_episodes)
    dataset = BCDataset.from_demos(demos, agent.observation_space, agent.action_space)
    artifacts["demos"] = {"path": demos.info["path"], "episodes": len(demos), "steps": demos.num_steps, "mean_return": demos.mean_return}
    if agent.global_step == 0:  # a resumed agent has its statistics already
        fit_observation_statistics(agent, dataset.obs[: dataset.size])
    previous_threads = set_torch_threads(config.torch_threads)
    try:
        schedule = TrainingSchedule(agent, config, context, env_factory, artifacts, NoCollection())
        metrics: dict[str, torch.Tensor] = {}
        while agent.global_step < config.total_steps:
            start = schedule.clock()
            metrics = bc_update(agent, dataset, config)
            agent.global_step += 1
            schedule.learn_time += schedule.clock() - start
            stop = schedule.update_end(agent.num_updates, partial(_floats, metrics))
            if schedule.step(partial(_floats, metrics)) or stop:
                break
        schedule.finish()
    finally:
        restore_torch_threads(previous_threads)
    return agent


def _floats(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    return {key: float(value) for key, value in metrics.items()}


# --------------------------------------------------------------------------- registration


def check_bc_profile(profile: Any) -> None:
    """Before training: BC needs ``config.demos`` (whether the path exists is checked when training starts,
    so that a finished run can be evaluated where its demonstrations are not)."""
    if not isinstance(profile.config.get("demos"), str):
        raise profile.fail(
            ("config", "demos"), "bc needs demonstrations: config.demos is not set",
            "Record some with 'daedalus demos record RUN --episodes 10 -o demos/NAME' and set config.demos: demos/NAME.",
        )


AGENT_SPEC = AgentSpec(
    agent_id="bc",
    agent_factory=make_bc_agent,
    training_wrapper=train_bc,
    description="Behaviour cloning from demonstrations (log-likelihood, entropy and L2 terms)",
    config_class=BCConfig,
    check_profile=check_bc_profile,
    action_spaces=("Discrete", "MultiDiscrete", "Box"),
    flat_observations=True,
)
