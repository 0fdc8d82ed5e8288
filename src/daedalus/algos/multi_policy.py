"""Several policies trained at once on a multi-agent environment (the Coltra workflow).

A multi-agent profile maps every agent of the env to a named policy (``policy_mapping``, longest
name prefix; by default one policy shared by all). :class:`PolicySet` holds one agent per policy
(each with its own network, optimizer and config) and checkpoints them as one agent.
:func:`train_policy_set` is the on-policy loop of PPO and A2C for it:

1. collect ``num_steps`` steps of every env copy, each group of agents acting with its policy
   (one ``act`` per group per step): one :class:`~daedalus.rollout.contract.Trajectory` per group;
2. per trainable policy: GAE per agent over the steps at which the agent acted
   (:func:`daedalus.returns.agent_gae`: dead, absent and waiting agents are masked, rewards that
   arrive while an agent waits go to its last action), then the algorithm's update;
3. log per-policy metrics (``<policy>/loss/...``), evaluate (team return and per-policy returns),
   checkpoint — the same training schedule as every algorithm.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np
import torch

from daedalus.agents.base import TensorAgent
from daedalus.algos.common import TrainingSchedule, restore_torch_threads, set_torch_threads
from daedalus.buffers.rollout import RolloutStorage
from daedalus.errors import ProfileError
from daedalus.returns import agent_gae
from daedalus.types import TrainContext

__all__ = ["PolicySet", "RandomPlayer", "policy_batch", "train_policy_set"]

#: Separates a policy's name from its own tensor names in a checkpoint.
_SEP = "::"


class PolicySet(TensorAgent):
    """Named policies trained together; one checkpoint (safetensors + JSON) for all of them.

    ``policies`` maps a policy name to its agent (e.g. an
    :class:`~daedalus.algos.on_policy.ActorCriticAgent`); ``groups`` maps it to the env's agent
    names it acts for; ``trainable`` says which ones learn. Step, update and episode counters
    are the run's (env steps summed over copies; episodes of whole env copies).
    """

    def __init__(self, policies: Mapping[str, Any], groups: Mapping[str, list[str]], trainable: Mapping[str, bool]) -> None:
        super().__init__("policy_set")
        self.policies = dict(policies)
        self.groups = {name: list(agents) for name, agents in groups.items()}
        self.trainable = {name: bool(trainable.get(name, True)) for name in self.policies}
        #: Groups whose observations carry a one-hot of the agent's index (``agent_id_input``).
        self.one_hot: set[str] = set()
        #: Groups whose critic is ``centralized`` (the group's joint observation) or reads the env's ``state``.
        self.critics: dict[str, str] = {}
        self.global_step = 0
        self.num_updates = 0
        self.num_episodes = 0

    def __repr__(self) -> str:
        inside = ", ".join(f"{name}: {len(self.groups[name])} agent(s)" for name in self.policies)
        return f"PolicySet({inside})"

    # ---- state (a TensorAgent)
    def state_tensors(self) -> dict[str, Any]:
        """Every policy's tensors, named ``<policy>::<name>``."""
        return {f"{name}{_SEP}{key}": value for name, agent in self.policies.items() for key, value in agent.state_tensors().items()}

    def state_json(self) -> dict[str, Any]:
        """Every policy's JSON state, the groups and the run's counters."""
        return {
            "policies": {name: agent.state_json() for name, agent in self.policies.items()},
            "groups": self.groups,
            "trainable": self.trainable,
            "counters": {"global_step": self.global_step, "num_updates": self.num_updates, "num_episodes": self.num_episodes},
        }

    def load_state(self, tensors: dict[str, Any], state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_tensors` / :meth:`state_json`."""
        saved = state.get("policies") or {}
        missing = [name for name in self.policies if name not in saved]
        if missing:
            raise ValueError(f"the checkpoint has no policy {', '.join(missing)} (it holds {', '.join(saved) or 'none'})")
        for name, agent in self.policies.items():
            prefix = f"{name}{_SEP}"
            agent.load_state({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, saved[name])
        counters = state.get("counters", {})
        self.global_step = int(counters.get("global_step", 0))
        self.num_updates = int(counters.get("num_updates", 0))
        self.num_episodes = int(counters.get("num_episodes", 0))

    def load_policy(self, name: str, tensors: dict[str, Any], state: dict[str, Any], source: str) -> None:
        """Start policy ``name`` from policy ``source`` of another run's checkpoint (weights and statistics)."""
        prefix = f"{source}{_SEP}"
        policy_state = (state.get("policies") or {}).get(source)
        if policy_state is None:
            raise ValueError(f"the checkpoint has no policy '{source}' (it holds {', '.join(state.get('policies') or {}) or 'none'})")
        agent = self.policies[name]
        global_step, num_updates, num_episodes = agent.global_step, agent.num_updates, agent.num_episodes
        agent.load_state({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, policy_state)
        agent.global_step, agent.num_updates, agent.num_episodes = global_step, num_updates, num_episodes

    def get_action(self, obs: Any, extra_state: Any = None) -> tuple[Any, Any]:
        """Not meaningful for several agents: act through a multi-agent source instead."""
        raise TypeError("a PolicySet acts for many agents at once: use daedalus evaluate RUN or its policies' predict()")

    def predict(self, obs: Any, deterministic: bool = True) -> Any:
        """The only policy's actions (a set of one); several policies need a multi-agent source."""
        if len(self.policies) != 1:
            raise TypeError(f"this agent holds {len(self.policies)} policies ({', '.join(self.policies)}); predict with one of them")
        return next(iter(self.policies.values())).predict(obs, deterministic)


class RandomPlayer(TensorAgent):
    """A policy of uniformly random actions (legal ones where the env masks): an opponent to train
    against (``policies: {opponent: {random: true}}``). Nothing to train; its generator is saved."""

    def __init__(self, observation_space: Any, action_space: Any, seed: int | None = None) -> None:
        from daedalus.rollout.policies import RandomPolicy

        super().__init__("random")
        self.observation_space, self.action_space = observation_space, action_space
        #: What acts in the envs (a :class:`~daedalus.rollout.policies.RandomPolicy`).
        self.collection_policy = RandomPolicy(action_space, seed=seed)
        self.global_step = self.num_updates = self.num_episodes = 0
        self.device = "cpu"

    def preprocess(self, obs: np.ndarray, update_stats: bool = False) -> np.ndarray:
        """Observations as they are (a random player does not read them)."""
        return np.asarray(obs)

    def predict(self, obs: Any, deterministic: bool = True) -> Any:
        """Random actions for a batch of observations."""
        return self.collection_policy.act(obs).actions

    def state_tensors(self) -> dict[str, Any]:
        """No tensors."""
        return {}

    def state_json(self) -> dict[str, Any]:
        """Its generator's state (so that a resumed run draws the same moves)."""
        return {"kind": "random", "rng": dict(self.collection_policy.rng.bit_generator.state)}

    def load_state(self, tensors: dict[str, Any], state: dict[str, Any]) -> None:
        """Restore the generator."""
        if isinstance(state.get("rng"), dict):
            self.collection_policy.rng.bit_generator.state = state["rng"]


def collection_policy(policy: Any, make_policy: Callable[[Any], Any]) -> Any:
    """What acts for ``policy`` in the envs: its own ``collection_policy`` (a random player), else ``make_policy(policy)``."""
    own = getattr(policy, "collection_policy", None)
    return own if own is not None else make_policy(policy)


#: ``update(agent, batch, progress_remaining) -> metrics`` (what PPO and A2C pass).
Update = Callable[[Any, Any, float], dict[str, float]]


def train_policy_set(
    env_factory: Callable[[int | None], Any],
    agent: PolicySet,
    config: Any,
    artifacts: dict[str, Any],
    context: TrainContext,
    update: Update,
    make_policy: Callable[[Any], Any],
) -> PolicySet:
    """Train every trainable policy of ``agent`` on its group's trajectories until ``config.total_steps``.

    ``config`` is the profile-level config: collection (``num_steps``), ``total_steps``,
    evaluation, checkpoints and logging; each policy's algorithm settings (learning rate,
    clipping, epochs, ...) are its own agent's config. ``make_policy(agent)`` gives a policy's
    collection :class:`~daedalus.rollout.contract.Policy`. Continues from ``agent.global_step``.
    """
    from daedalus.rollout.multiagent import multi_agent_source

    if getattr(context, "backend", "local") == "ray" and any(getattr(getattr(p, "config", None), "normalize_obs", False) for p in agent.policies.values()):
        raise ProfileError(
            "normalize_obs on a multi-agent run with rollout.backend: ray is not supported yet (the workers do not send "
            "their observation statistics per group). Use rollout.backend: local or subprocess, or normalize_obs: false."
        )
    previous_threads = set_torch_threads(config.torch_threads)
    source = multi_agent_source(context, agent.groups, {name: p.preprocess for name, p in agent.policies.items()}, agent.one_hot, agent.critics)
    try:
        policies = {name: collection_policy(policy, make_policy) for name, policy in agent.policies.items()}
        evaluator = _evaluator(context, agent, policies)
        source.reset(seed=context.seed)  # before the training clock starts (Ray: starts the workers)
        schedule = TrainingSchedule(agent, config, context, env_factory, artifacts, source, evaluator=evaluator)
        latest: dict[str, float] = {}
        while agent.global_step < config.total_steps:
            progress_remaining = 1.0 - agent.global_step / config.total_steps
            for name, policy in agent.policies.items():
                if agent.trainable[name] and policy.config.anneal_lr:
                    for group in policy.optimizer.param_groups:
                        group["lr"] = progress_remaining * policy.config.learning_rate
            trajectories = source.sample(policies, config.num_steps, policy_version=agent.num_updates)
            # Env steps of this rollout (on Ray: of the copies whose workers answered this round).
            agent.global_step += config.num_steps * getattr(source, "last_num_envs", source.num_envs)
            for policy in agent.policies.values():
                policy.global_step = agent.global_step
            transitions = sum(t.num_transitions for t in trajectories.values())
            stop = schedule.rollout_end(transitions, source.take_team_returns(), agent.num_updates)

            start = schedule.clock()
            latest = {}
            for name, trajectory in trajectories.items():
                policy = agent.policies[name]
                if not agent.trainable[name] or not trajectory.valid.any():
                    continue
                batch = policy_batch(policy, trajectory)
                metrics = update(policy, batch, progress_remaining)
                metrics["charts/learning_rate"] = policy.optimizer.param_groups[0]["lr"]
                latest.update(metrics if len(agent.policies) == 1 else _per_policy(metrics, name))
            agent.num_updates += 1
            schedule.learn_time += schedule.clock() - start
            stop = schedule.update_end(agent.num_updates, partial(dict, latest)) or stop
            if schedule.step(partial(_with_agent_metrics, latest, source)) or stop:
                break
        schedule.finish()
    finally:
        summary = getattr(source, "summary", None)  # Ray workers: restarts, rounds
        if summary is not None:
            artifacts["rollout"] = summary()
        source.close()
        restore_torch_threads(previous_threads)
    return agent


def train_replay_policy_set(
    env_factory: Callable[[int | None], Any],
    agent: PolicySet,
    config: Any,
    artifacts: dict[str, Any],
    save_callback: Callable[..., None] | None,
    context: TrainContext | None,
    train: Callable[..., Any],
) -> PolicySet:
    """A replay algorithm (DQN) on a multi-agent env: independent Q-learning with one network shared
    by every agent (each agent's transitions are separate rows of one replay buffer).

    ``train`` is the algorithm's own training wrapper, called with the one policy's agent, a
    single-group view of the multi-agent source and a multi-agent evaluator; checkpoints save the
    whole :class:`PolicySet`.
    """
    import dataclasses

    from daedalus.rollout.multiagent import GroupWorker, multi_agent_source

    if context is None:
        raise ValueError("training on a multi-agent env needs the run's context (daedalus train, or daedalus.train())")
    ((name, inner),) = agent.policies.items()
    source = multi_agent_source(context, agent.groups, None, agent.one_hot, agent.critics)
    worker = GroupWorker(source, name)
    evaluator = _evaluator(context, agent, {name: evaluation_policy(inner)})

    def checkpoint(_agent: Any, checkpoint_name: str, step: int) -> None:
        agent.global_step, agent.num_updates, agent.num_episodes = inner.global_step, inner.num_updates, inner.num_episodes
        context.checkpoint(agent, checkpoint_name, step)

    inner_context = dataclasses.replace(context, checkpoint=checkpoint)
    train(env_factory, inner, config, artifacts, save_callback, inner_context, source=worker, evaluator=evaluator)
    agent.global_step, agent.num_updates, agent.num_episodes = inner.global_step, inner.num_updates, inner.num_episodes
    return agent


def replay_on_policy_sets(train: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a replay algorithm's training wrapper (DQN, SAC, TD3) so that a one-policy
    :class:`PolicySet` (a multi-agent env) trains through :func:`train_replay_policy_set`, which
    calls the undecorated wrapper back with the policy's own agent."""
    import functools

    @functools.wraps(train)
    def wrapper(env_factory: Callable[[int | None], Any], agent: Any, config: Any, artifacts: dict[str, Any],
                save_callback: Callable[..., None] | None = None, context: TrainContext | None = None, **options: Any) -> Any:
        if isinstance(agent, PolicySet):
            return train_replay_policy_set(env_factory, agent, config, artifacts, save_callback, context, train)
        return train(env_factory, agent, config, artifacts, save_callback, context, **options)

    return wrapper


def evaluation_policy(policy: Any) -> Any:
    """What plays for ``policy`` in an evaluation: its own collection policy (a random player), an
    actor-critic's :class:`~daedalus.algos.on_policy.ActorCriticPolicy`, else its ``predict``."""
    from daedalus.algos.on_policy import ActorCriticAgent, ActorCriticPolicy
    from daedalus.rollout.policies import PredictPolicy

    own = getattr(policy, "collection_policy", None)
    if own is not None:
        return own
    return ActorCriticPolicy(policy) if isinstance(policy, ActorCriticAgent) else PredictPolicy(policy)


def _with_agent_metrics(latest: Mapping[str, float], source: Any) -> dict[str, float]:
    return {**latest, **source.agent_metrics()}


def _per_policy(metrics: Mapping[str, float], name: str) -> dict[str, float]:
    """``loss/policy`` -> ``loss/<name>/policy``: each policy's curves under the usual prefixes."""
    out = {}
    for key, value in metrics.items():
        head, _, tail = key.partition("/")
        out[f"{head}/{name}/{tail}" if tail else f"{name}/{key}"] = value
    return out


def policy_batch(policy: Any, trajectory: Any) -> Any:
    """One policy's flat training batch from its group's trajectory: per-agent GAE (``policy.config``'s
    ``gamma`` and ``gae_lambda``) over the steps its agents acted, invalid steps left out.

    ``policy`` is an :class:`~daedalus.algos.on_policy.ActorCriticAgent`; the result is what
    ``ppo_update`` and ``a2c_update`` take.
    """
    final_values = np.zeros(trajectory.rewards.shape, dtype=np.float32)
    truncated = trajectory.truncated
    if truncated.any():
        steps, rows = np.nonzero(truncated)
        final_values[steps, rows] = policy.values(trajectory.next_obs[steps, rows])
    values = trajectory.extras["values"]
    config = policy.config
    advantages, returns = agent_gae(
        trajectory.rewards, values, trajectory.terminated, truncated, trajectory.valid, final_values,
        policy.values(trajectory.last_obs), config.gamma, config.gae_lambda,
    )
    storage = RolloutStorage.wrap(
        trajectory.obs, trajectory.actions, trajectory.extras["log_probs"], values,
        trajectory.rewards, trajectory.terminated, truncated, trajectory.valid,
    )
    storage.advantages, storage.returns = advantages, returns
    batch = storage.flat_batch(policy.device)
    masks = trajectory.extras.get("action_mask")
    if masks is not None:  # the legal actions of each kept step, in flat_batch's order
        keep = trajectory.valid.reshape(-1)
        flat = masks.reshape(-1, masks.shape[-1])[keep]
        batch.masks = torch.from_numpy(np.ascontiguousarray(flat)).to(policy.device)
    return batch


def _evaluator(context: TrainContext, agent: PolicySet, policies: Mapping[str, Any]) -> Callable[..., Any]:
    """Periodic evaluation of the policies together: the team return, and each policy's mean per agent."""
    from daedalus.rollout.multiagent import evaluate_policies

    def evaluate(n_episodes: int, deterministic: bool, seed: int | None) -> tuple[float, float, tuple[float, ...], dict[str, float]]:
        result = evaluate_policies(context, agent.groups, policies, n_episodes, deterministic, seed, one_hot=agent.one_hot, critics=agent.critics)
        extra = {f"eval/{name}/mean_return": value for name, value in result.policy_means().items()}
        return result.mean_team_return, result.std_team_return, tuple(result.team_returns), extra

    return evaluate
