"""DAgger: behaviour cloning on the states the learner visits, labelled by an expert (Ross et al., 2011).

One file, in the order the algorithm runs: config → expert (a saved run) → rollout policy (the
beta mixture) → rounds of collect / label / aggregate / train → registration. The learner, its
loss and its update are behaviour cloning's (:mod:`daedalus.algos.bc`).

Each round:

1. ``beta = beta_start * max(0, 1 - round / beta_rounds)`` (imitation's linear schedule: round 0
   is the expert alone when ``beta_start`` is 1);
2. collect ``steps_per_round`` env steps through the run's rollout source; at every step and in
   every env copy the expert acts with probability ``beta``, else the learner (sampling);
3. label every visited observation with the expert's deterministic action (one batched call) and
   add the pairs to the aggregated dataset (which starts with ``demos`` when given);
4. ``updates_per_round`` BC gradient steps on the whole aggregated dataset.

Training stops when ``total_expert_labels`` observations have been labelled. A DAgger run's
``steps`` are those expert-labelled env steps: logging, evaluation and checkpoints are scheduled
in them. The expert is loaded as ``daedalus evaluate`` loads a run without ``--trust-code``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from daedalus.algos.bc import (
    BCDataset,
    PolicyFitConfig,
    bc_update,
    fit_observation_statistics,
    load_demonstrations,
    make_bc_agent,
)
from daedalus.algos.common import (
    TrainingSchedule,
    default_context,
    make_source,
    restore_torch_threads,
    set_torch_threads,
)
from daedalus.algos.on_policy import ActorCriticAgent
from daedalus.errors import DaedalusError
from daedalus.evaluation import agent_policy
from daedalus.params import AT_LEAST_ONE, NONNEGATIVE, UNIT, param
from daedalus.rollout.contract import DEFAULT_GROUP, ActOutput, Policy
from daedalus.specs import AgentSpec
from daedalus.types import TrainContext

__all__ = ["AGENT_SPEC", "BetaMixturePolicy", "DAggerConfig", "beta_at", "load_expert", "make_dagger_agent", "train_dagger"]


# --------------------------------------------------------------------------- config


@dataclass
class DAggerConfig(PolicyFitConfig):
    """DAgger hyperparameters (imitation's vocabulary). Profiles set them under ``config:``.

    The network, BC loss, evaluation and bookkeeping fields are behaviour cloning's
    (:class:`~daedalus.algos.bc.PolicyFitConfig`); their intervals count expert-labelled env steps.
    """

    expert: str | None = param(
        None,
        "The expert (required): a saved run folder or run id on the same env. A relative folder is relative to "
        "the profile's folder; a run id is looked up in the runs folder of this run.",
    )
    expert_checkpoint: str | None = param(None, "The expert's checkpoint (default: final, else the newest).")
    beta_start: float = param(1.0, "Probability that the expert acts, in round 0.", UNIT)
    beta_rounds: int = param(4, "Rounds over which beta decays linearly from beta_start to 0.", AT_LEAST_ONE)
    steps_per_round: int = param(250, "Env steps collected (and labelled by the expert) per round, over all env copies.", AT_LEAST_ONE)
    updates_per_round: int = param(500, "BC gradient steps on the aggregated dataset after each round.", AT_LEAST_ONE)
    total_expert_labels: int = param(2_000, "Budget: stop once the expert has labelled this many observations.", AT_LEAST_ONE)
    eval_every_steps: int = param(250, "Evaluate every this many expert-labelled steps (after the round that crosses it); 0 disables.", NONNEGATIVE)
    log_every_steps: int = param(250, "Log metrics every this many expert-labelled steps.", AT_LEAST_ONE)

    @property
    def total_steps(self) -> int:
        """What the training schedule runs to: the expert-label budget."""
        return self.total_expert_labels


def beta_at(round_index: int, config: DAggerConfig) -> float:
    """The probability that the expert acts in round ``round_index`` (linear decay to 0)."""
    return config.beta_start * max(0.0, 1.0 - round_index / config.beta_rounds)


# --------------------------------------------------------------------------- expert


def load_expert(config: DAggerConfig, context: TrainContext, observation_space: Any, action_space: Any) -> Any:
    """The expert run's agent, checked to act on this run's env (same id, arguments and spaces)."""
    if config.expert is None:
        raise DaedalusError("dagger: config.expert is required: a saved run on the same env (see docs/imitation.md).")
    # Loading a saved run is the api's job (algorithms sit below it: the import layers in
    # pyproject.toml); the run machinery hands its loader over in the context.
    load_run = context.load_run
    if load_run is None:
        raise DaedalusError("dagger: loading the expert run needs the run machinery: train through 'daedalus train' or daedalus.train().")
    ref = Path(config.expert).expanduser()
    local = ref if ref.is_absolute() else (context.profile_dir or Path.cwd()) / ref
    target = local if local.exists() else config.expert
    runs_dir = context.run_dir.parent if context.run_dir is not None else None
    loaded = load_run(target, checkpoint=config.expert_checkpoint, runs_dir=runs_dir)
    profile = loaded.profile
    if loaded.resolved.groups is not None:
        raise DaedalusError(f"dagger: the expert {loaded.path} is a multi-agent run; DAgger imitates one agent.")
    if context.env_id and (profile.env_id != context.env_id or dict(profile.env_args) != dict(context.env_args)):
        raise DaedalusError(
            f"dagger: the expert {loaded.path} was trained on {profile.env_id} {dict(profile.env_args)}, but this run's env is "
            f"{context.env_id} {dict(context.env_args)}. Name an expert trained on the same env."
        )
    if loaded.resolved.observation_space != observation_space or loaded.resolved.action_space != action_space:
        raise DaedalusError(
            f"dagger: the expert {loaded.path} acts in {loaded.resolved.observation_space} -> {loaded.resolved.action_space}, "
            f"but this run's env has {observation_space} -> {action_space} (different wrappers?)."
        )
    return loaded


# --------------------------------------------------------------------------- rollout policy


class BetaMixturePolicy:
    """The rollout policy of a round: per step and env copy, the expert with probability ``beta``, else the learner.

    Lives in this process next to the expert and the learner (no weights to exchange).
    """

    def __init__(self, expert: Policy, learner: ActorCriticAgent, seed: int | None) -> None:
        self.expert = expert
        self.learner = learner
        self.beta = 1.0
        self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray, state: Any = None, deterministic: bool = False) -> ActOutput:
        """Env actions for ``obs``: the expert's where a uniform draw falls below ``beta``."""
        rows = len(obs)
        expert_turn = self.rng.random(rows) < self.beta
        if expert_turn.all():
            return ActOutput(actions=np.asarray(self.expert.act(obs, None, deterministic=True).to_env()))
        actions = np.asarray(self.learner.predict(obs, deterministic=deterministic))
        if expert_turn.any():
            expert_actions = np.asarray(self.expert.act(obs, None, deterministic=True).to_env())
            actions = np.where(expert_turn.reshape(rows, *[1] * (actions.ndim - 1)), expert_actions, actions).astype(actions.dtype)
        return ActOutput(actions=actions)

    def get_weights(self) -> dict[str, np.ndarray]:
        """Nothing: this policy runs in the process that trains."""
        return {}

    def set_weights(self, weights: Any) -> None:
        """Accepts only the empty mapping of :meth:`get_weights`."""
        if weights:
            raise ValueError("BetaMixturePolicy has no weights to set")


# --------------------------------------------------------------------------- agent


def make_dagger_agent(
    observation_space: spaces.Space[Any],
    action_space: spaces.Space[Any],
    config: DAggerConfig | None = None,
    device: str = "cpu",
    seed: int | None = None,
) -> ActorCriticAgent:
    """The registered agent factory: behaviour cloning's learner, named ``dagger``."""
    return make_bc_agent(observation_space, action_space, config or DAggerConfig(), device, seed, algo="dagger")


# --------------------------------------------------------------------------- training


def train_dagger(
    env_factory: Callable[[int | None], Any],
    agent: ActorCriticAgent,
    config: DAggerConfig,
    artifacts: dict[str, Any],
    save_callback: Callable[..., None] | None = None,
    context: TrainContext | None = None,
) -> ActorCriticAgent:
    """Run DAgger rounds until ``config.total_expert_labels`` observations are labelled (continues from
    ``agent.global_step``; the aggregated dataset of an interrupted run is not saved: a resumed run
    starts a new one from ``demos``).

    Metrics: ``dagger/round``, ``dagger/beta``, ``dagger/dataset_size``, ``dagger/expert_labels``
    and behaviour cloning's ``bc/*`` of the round's last gradient step.
    """
    context = context or default_context("dagger", env_factory, artifacts, save_callback)
    if context.backend == "ray":
        raise DaedalusError("dagger: the expert labels steps in this process; use rollout.backend: local or subprocess.")
    expert_run = load_expert(config, context, agent.observation_space, agent.action_space)
    expert = agent_policy(expert_run.agent)
    artifacts["expert"] = {"path": str(expert_run.path), "checkpoint": expert_run.checkpoint}

    # ---- the aggregated dataset: the initial demonstrations, then room for every expert label
    remaining = max(config.total_expert_labels - agent.global_step, 0)
    if config.demos is not None:
        demos = load_demonstrations(config.demos, context.profile_dir, config.num_episodes)
        dataset = BCDataset.from_demos(demos, agent.observation_space, agent.action_space, capacity=demos.num_steps + remaining)
        artifacts["demos"] = {"path": demos.info["path"], "episodes": len(demos), "steps": demos.num_steps, "mean_return": demos.mean_return}
        if agent.global_step == 0:
            fit_observation_statistics(agent, dataset.obs[: dataset.size])
    else:
        dataset = BCDataset(agent.observation_space, agent.action_space, max(remaining, 1))

    previous_threads = set_torch_threads(config.torch_threads)
    source = make_source(context)
    try:
        mixture = BetaMixturePolicy(expert, agent, None if context.seed is None else context.seed + 1)
        source.reset(seed=context.seed)
        schedule = TrainingSchedule(agent, config, context, env_factory, artifacts, _Timing(source))
        round_index = agent.global_step // config.steps_per_round  # a resumed run continues the beta schedule
        metrics: dict[str, float] = {}
        while agent.global_step < config.total_expert_labels:
            # ---- collect with the beta mixture (the source steps every env copy)
            mixture.beta = beta_at(round_index, config)
            budget = min(config.steps_per_round, config.total_expert_labels - agent.global_step)
            visited, episode_returns = collect(source, mixture, budget, round_index)

            # ---- label every visited observation with the expert's action, aggregate
            start = schedule.clock()
            labels = np.asarray(expert.act(visited, None, deterministic=True).to_env())
            dataset.add(visited, labels)
            fit_observation_statistics(agent, visited)
            agent.global_step += len(visited)
            stop = schedule.rollout_end(len(visited), episode_returns, round_index)

            # ---- train: behaviour cloning on everything labelled so far
            bc_metrics = bc_update(agent, dataset, config, steps=config.updates_per_round)
            schedule.learn_time += schedule.clock() - start
            metrics = {key: float(value) for key, value in bc_metrics.items()}
            metrics.update({
                "dagger/round": float(round_index), "dagger/beta": mixture.beta,
                "dagger/dataset_size": float(dataset.size), "dagger/expert_labels": float(agent.global_step),
            })
            round_index += 1
            stop = schedule.update_end(agent.num_updates, partial(dict, metrics)) or stop
            if schedule.step(partial(dict, metrics)) or stop:
                break
        schedule.finish()
    finally:
        source.close()
        restore_torch_threads(previous_threads)
    return agent


def collect(source: Any, policy: Policy, budget: int, round_index: int) -> tuple[np.ndarray, np.ndarray]:
    """``budget`` observations the rollout policy acted on (in step order), and the returns of the episodes
    that ended. Steps an autoresetting env spends on a reset carry no observation to label, so the
    source is sampled again until ``budget`` real steps are in."""
    observations: list[np.ndarray] = []
    returns: list[np.ndarray] = []
    count = 0
    while count < budget:
        num_steps = math.ceil((budget - count) / source.batch_size)
        trajectory = source.sample({DEFAULT_GROUP: policy}, num_steps, policy_version=round_index)[DEFAULT_GROUP]
        valid = trajectory.obs[trajectory.valid]  # time-major
        observations.append(valid[: budget - count])
        returns.append(trajectory.episode_returns)
        count += len(observations[-1])
    return np.concatenate(observations), np.concatenate(returns)


class _Timing:
    """Env and inference seconds of the rollout source (labelling and training count as learning)."""

    def __init__(self, source: Any) -> None:
        self.source = source

    @property
    def env_time(self) -> float:
        return float(self.source.env_time)

    @property
    def inference_time(self) -> float:
        return float(self.source.inference_time)


# --------------------------------------------------------------------------- registration


def check_dagger_profile(profile: Any) -> None:
    """Before training: DAgger needs ``config.expert`` (the run is loaded when training starts)."""
    if not isinstance(profile.config.get("expert"), str):
        raise profile.fail(
            ("config", "expert"), "dagger needs an expert: config.expert is not set",
            "Train one first (e.g. 'daedalus train examples/cartpole.yaml') and set config.expert to its run folder or id.",
        )


AGENT_SPEC = AgentSpec(
    agent_id="dagger",
    agent_factory=make_dagger_agent,
    training_wrapper=train_dagger,
    description="DAgger: behaviour cloning on states the learner visits, labelled by an expert run",
    config_class=DAggerConfig,
    check_profile=check_dagger_profile,
    action_spaces=("Discrete", "MultiDiscrete", "Box"),
    flat_observations=True,
)

