"""What PPO and A2C share: the actor-critic agent and the on-policy training loop.

The loop reads top to bottom: collect ``num_steps`` steps from every env copy (one batched
forward per step), bootstrap truncated episodes from their real final observation, compute
GAE targets, hand the flat batch to the algorithm's ``update``, then log, evaluate and
checkpoint. Between collection and the targets, an optional ``reward_fn`` (GAIL, AIRL) replaces
the learning rewards with learned ones (logged episode returns stay the environment's), and an
optional ``after_update`` learns from the rollout once the policy has (their discriminator). An
algorithm file (``ppo.py``, ``a2c.py``) supplies its config, its optimizer and its
``update(agent, batch, progress_remaining) -> metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from daedalus.agents.base import TensorAgent
from daedalus.algos.common import (
    TrainingSchedule,
    default_context,
    make_source,
    restore_torch_threads,
    set_torch_threads,
)
from daedalus.buffers.rollout import RolloutBatch, RolloutStorage
from daedalus.errors import ProfileError
from daedalus.nn import policy_gradient
from daedalus.nn.distributions import mask_logits, to_env_actions
from daedalus.nn.networks import ACTIVATIONS, ActorCritic
from daedalus.nn.normalization import RunningMeanStd
from daedalus.params import AT_LEAST_ONE, NONNEGATIVE, POSITIVE, UNIT, check_fields, param
from daedalus.rollout.contract import DEFAULT_GROUP, ActOutput, Trajectory
from daedalus.rollout.source import LocalSource
from daedalus.types import TrainContext

__all__ = ["ActorCriticAgent", "ActorCriticPolicy", "OnPolicyConfig", "RewardFn", "Update", "train_on_policy"]


# --------------------------------------------------------------------------- config


@dataclass
class OnPolicyConfig:
    """What every on-policy actor-critic algorithm shares: rollouts, network, schedules, bookkeeping."""

    total_steps: int = param(100_000, "Environment steps to train for, summed over all envs and agents.", AT_LEAST_ONE)
    num_steps: int = param(128, "Steps per env copy in each rollout; a rollout holds num_steps * num_envs * num_agents transitions.", AT_LEAST_ONE)
    learning_rate: float = param(2.5e-4, "Adam learning rate (initial value when anneal_lr).", POSITIVE)
    anneal_lr: bool = param(True, "Decay the learning rate linearly to 0 over total_steps.")
    gamma: float = param(0.99, "Discount factor.", UNIT)
    gae_lambda: float = param(0.95, "GAE lambda: bias/variance trade-off of the advantage estimate.", UNIT)
    vf_coef: float = param(0.5, "Value loss coefficient c1; the value loss is the paper's (V - V_target)^2 (as SB3; CleanRL halves it).", NONNEGATIVE)
    ent_coef: float = param(0.0, "Entropy bonus coefficient c2.", NONNEGATIVE)
    max_grad_norm: float = param(0.5, "Global gradient-norm clipping threshold.", POSITIVE)
    norm_adv: bool = param(True, "Normalize advantages per minibatch (zero mean, unit std).")
    normalize_obs: bool = param(False, "Normalize observations with running mean/std (saved with the agent).")
    obs_clip: float = param(10.0, "Clip normalized observations to [-obs_clip, obs_clip].", POSITIVE)
    hidden_sizes: list[int] = param([64, 64], "Hidden layer sizes of the actor and of the critic MLP (net_arch).", AT_LEAST_ONE)
    activation: str = param("tanh", f"Hidden activation: one of {sorted(ACTIVATIONS)}.", choices=sorted(ACTIVATIONS))
    shared_trunk: bool = param(False, "Actor and critic share their hidden layers.")
    critic: str = param(
        "decentralized",
        "Multi-agent envs: 'decentralized' (IPPO: the critic sees the agent's own observation), 'centralized' "
        "(MAPPO: the critic sees every agent of the group in the same env copy, plus the agent's index) or 'state' "
        "(MAPPO: the critic sees the env's global state, env.state(), plus the agent's index).",
        choices=["decentralized", "centralized", "state"],
    )
    log_std_init: float = param(0.0, "Initial log standard deviation of Gaussian policies (Box actions).")
    eval_every_steps: int = param(10_000, "Evaluate on separate env copies every this many steps; 0 disables.", NONNEGATIVE)
    eval_episodes: int = param(10, "Episodes per periodic evaluation.", AT_LEAST_ONE)
    eval_deterministic: bool = param(True, "Evaluate with the policy's mode instead of sampling.")
    final_eval_episodes: int = param(20, "Episodes of the evaluation run when training completes (written to eval.json); 0 disables.", NONNEGATIVE)
    target_return: float | None = param(None, "Stop training once a periodic evaluation's mean return reaches this; null disables.")
    checkpoint_every_steps: int = param(50_000, "Write a checkpoint step-<N> every this many steps; 0 disables.", NONNEGATIVE)
    keep_last: int = param(3, "Periodic checkpoints to keep (older ones are deleted by the run store).", NONNEGATIVE)
    log_every_steps: int = param(2_000, "Log metrics every this many steps.", AT_LEAST_ONE)
    torch_threads: int = param(1, "torch CPU threads while training; 1 is fastest for small MLPs (less sync overhead); 0 keeps torch's default.", NONNEGATIVE)
    loss: str | None = param(None, "A custom loss by reference (pkg.mod:fn or file.py:fn), called like the algorithm's own (ppo_loss / a2c_loss): loss(batch, network, config, ...) -> (loss, metrics). It runs through autograd.", code=True)
    closed_form_gradients: bool = param(True, "Use the hand-derived gradient of the built-in loss (MLP, tanh/relu, categorical/Gaussian) instead of autograd: same result, several times faster on a CPU.")

    def __post_init__(self) -> None:
        check_fields(self)  # ranges and choices (a profile's values were checked on load already)
        self.hidden_sizes = [int(size) for size in self.hidden_sizes]


# --------------------------------------------------------------------------- agent


class ActorCriticAgent(TensorAgent):
    """Actor-critic policy, its optimizer, observation statistics, counters and RNG.

    The algorithm names itself (``algo``) and chooses the optimizer (``make_optimizer(parameters,
    config)``): PPO and A2C are this class with their own optimizer, not subclasses of it.

    Everything needed to continue training or to act identically after a reload is in
    :meth:`state_tensors` / :meth:`state_json`.
    """

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        config: OnPolicyConfig,
        device: str = "cpu",
        seed: int | None = None,
        *,
        algo: str = "actor-critic",
        make_optimizer: Callable[[list[torch.Tensor], Any], Any] | None = None,
        actor_inputs: int | None = None,
    ) -> None:
        #: Name stored in checkpoints and shown in logs.
        self.algo = algo
        super().__init__(name=algo)
        self.config = config
        self.observation_space = observation_space
        self.action_space = action_space
        self.device = torch.device(device)
        self.obs_shape = tuple(observation_space.shape or ())
        obs_dim = int(np.prod(self.obs_shape))
        # Initialize the weights from `seed` without touching the caller's global torch RNG.
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.network = ActorCritic(
                obs_dim, action_space, config.hidden_sizes, config.activation, config.shared_trunk, config.log_std_init,
                actor_inputs,
            ).to(self.device)
        self._functional = policy_gradient.supports(self.network)
        # Acting on a few observations: numpy forward + numpy sampling (no torch dispatch per step).
        self._numpy_acting = self._functional and self.device.type == "cpu"
        self.rng = np.random.default_rng(seed)  # action sampling while collecting (numpy acting)
        #: The network's parameters, listed once (nn.Module.parameters() walks the module tree).
        self.parameters: list[torch.Tensor] = list(self.network.parameters())
        # The optimizer must have param_groups, step and state_dict (daedalus.nn.optim's do).
        self.optimizer = (make_optimizer or _default_optimizer)(self.parameters, config)
        self.obs_rms = RunningMeanStd(self.obs_shape, clip=config.obs_clip) if config.normalize_obs else None
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed if seed is not None else int(torch.randint(2**31, ()).item()))
        self.global_step = 0
        self.num_updates = 0
        self.num_episodes = 0

    # ---- acting
    def preprocess(self, obs: np.ndarray, update_stats: bool = False) -> np.ndarray:
        """Flat float32 observations, normalized when ``normalize_obs`` (stats updated if asked)."""
        obs = np.asarray(obs).reshape(len(obs), -1)
        if self.obs_rms is None:
            return obs.astype(np.float32, copy=False)
        if update_stats:
            self.obs_rms.update(obs)
        return self.obs_rms.normalize(obs)

    def _tensor(self, obs: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(obs).to(self.device)

    def _forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # MLPs the closed-form path knows are run without nn.Module call overhead.
        if self._functional:
            return policy_gradient.forward(self.network, obs)
        return self.network(obs)

    def _act_numpy(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`act` in numpy: the same distributions, sampled with the agent's numpy RNG."""
        policy_out, values = policy_gradient.forward_numpy(self.network, obs)
        if self.network.log_std is not None:  # diagonal Gaussian: log_prob of mean + std * noise
            log_std = self.network.log_std.detach().numpy()
            noise = self.rng.standard_normal(policy_out.shape, dtype=np.float32)
            actions = policy_out + np.exp(log_std) * noise
            log_probs = (-0.5 * noise * noise - log_std - 0.5 * np.log(2 * np.pi)).sum(-1, dtype=np.float32)
            return actions, log_probs, values
        # categorical: Gumbel-max on the log-probabilities, as nn.distributions.Categorical.sample
        log_p = policy_out - policy_out.max(-1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
        uniform = np.maximum(self.rng.random(log_p.shape, dtype=np.float32), np.float32(1e-20))
        actions = (log_p - np.log(-np.log(uniform))).argmax(-1)
        return actions, log_p[np.arange(len(actions)), actions], values

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample ``(actions, log_probs, values)`` for preprocessed observations (one forward)."""
        if self._numpy_acting:
            return self._act_numpy(obs)
        return self._act_torch(obs)

    @torch.inference_mode()
    def act_masked(self, obs: np.ndarray, mask: np.ndarray, deterministic: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``act`` (or, ``deterministic``, the most likely action) among the legal actions of ``mask``
        (``(rows, n)`` bool, a Discrete action space): illegal actions get no probability."""
        if self.network.log_std is not None or self.network.nvec is not None:
            raise ValueError("action masks apply to Discrete action spaces only")
        policy_out, values = self._forward(self._tensor(obs))
        dist = self.network.distribution(mask_logits(policy_out, torch.as_tensor(mask, dtype=torch.bool, device=self.device)))
        actions = dist.mode() if deterministic else dist.sample(self.generator)
        return actions.cpu().numpy(), dist.log_prob(actions).cpu().numpy(), values.cpu().numpy()

    @torch.inference_mode()
    def _act_torch(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        policy_out, values = self._forward(self._tensor(obs))
        dist = self.network.distribution(policy_out)
        actions = dist.sample(self.generator)
        return actions.cpu().numpy(), dist.log_prob(actions).cpu().numpy(), values.cpu().numpy()

    def values(self, obs: np.ndarray) -> np.ndarray:
        """V(obs) for preprocessed observations."""
        if self._numpy_acting:
            return policy_gradient.forward_numpy(self.network, obs, policy=False)[1]
        return self._values_torch(obs)

    @torch.inference_mode()
    def _values_torch(self, obs: np.ndarray) -> np.ndarray:
        obs_t = self._tensor(obs)
        values = policy_gradient.value(self.network, obs_t) if self._functional else self.network.value(obs_t)
        return values.cpu().numpy()

    def predict(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """Env-ready actions for a batch of raw observations (Box actions clipped to bounds).

        Deterministic actions take the collection path (NumPy on a CPU), so evaluating costs
        what acting costs; sampled ones use the torch distribution and the agent's torch
        generator, never the collection RNG.
        """
        obs = self.preprocess(np.asarray(obs))
        return self.predict_preprocessed(obs) if deterministic else self._predict_torch(obs, deterministic=False)

    def predict_preprocessed(self, obs: np.ndarray) -> np.ndarray:
        """Env-ready mode actions (argmax or mean) for preprocessed observations."""
        if self._numpy_acting and self.network.nvec is None:
            policy_out, _ = policy_gradient.forward_numpy(self.network, obs)
            actions = policy_out if self.network.log_std is not None else policy_out.argmax(-1)
            return to_env_actions(actions, self.action_space)
        return self._predict_torch(obs, deterministic=True)

    @torch.inference_mode()
    def _predict_torch(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        policy_out, _ = self._forward(self._tensor(obs))
        dist = self.network.distribution(policy_out)
        actions = dist.mode() if deterministic else dist.sample(self.generator)
        return to_env_actions(actions.cpu().numpy(), self.action_space)

    # ---- state
    def state_tensors(self) -> dict[str, Any]:
        tensors: dict[str, Any] = {f"network/{k}": v for k, v in self.network.state_dict().items()}
        for index, state in self.optimizer.state_dict()["state"].items():
            for key, value in state.items():
                tensors[f"optimizer/{index}/{key}"] = torch.as_tensor(value)
        if self.obs_rms is not None:
            tensors.update({f"obs_rms/{k}": v for k, v in self.obs_rms.state().items()})
        tensors["rng/torch"] = self.generator.get_state()
        return tensors

    def state_json(self) -> dict[str, Any]:
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.state_dict()["param_groups"]]
        return {
            "algo": self.algo,
            "config": asdict(self.config),
            "counters": {"global_step": self.global_step, "num_updates": self.num_updates, "num_episodes": self.num_episodes},
            "optimizer_param_groups": groups,
            "rng": dict(self.rng.bit_generator.state),
        }

    def load_state(self, tensors: dict[str, Any], state: dict[str, Any]) -> None:
        self.network.load_state_dict({k[len("network/"):]: v for k, v in tensors.items() if k.startswith("network/")})
        optimizer_state = self.optimizer.state_dict()
        per_param: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer/"):
                _, index, name = key.split("/", 2)
                per_param.setdefault(int(index), {})[name] = value.to(self.device)
        optimizer_state["state"] = per_param
        for group, saved in zip(optimizer_state["param_groups"], state.get("optimizer_param_groups", []), strict=False):
            group.update(saved)
        self.optimizer.load_state_dict(optimizer_state)
        if self.obs_rms is not None:
            self.obs_rms.load({k[len("obs_rms/"):]: v.numpy() for k, v in tensors.items() if k.startswith("obs_rms/")})
        if "rng/torch" in tensors:
            self.generator.set_state(tensors["rng/torch"].to(torch.uint8))
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]
        counters = state.get("counters", {})
        self.global_step = int(counters.get("global_step", 0))
        self.num_updates = int(counters.get("num_updates", 0))
        self.num_episodes = int(counters.get("num_episodes", 0))


def _default_optimizer(parameters: list[torch.Tensor], config: Any) -> Any:
    from daedalus.nn.optim import Adam

    return Adam(parameters, lr=config.learning_rate)


# --------------------------------------------------------------------------- collection policy


class ActorCriticPolicy:
    """The agent's collection policy (the :class:`~daedalus.rollout.Policy` contract).

    ``act`` samples actions with their log-probabilities and values in one forward pass
    (NumPy on a CPU); ``get_weights``/``set_weights`` exchange the network's parameters (and the
    observation statistics) as plain arrays.
    """

    def __init__(self, agent: ActorCriticAgent) -> None:
        self.agent = agent

    def act(self, obs: np.ndarray, state: Any = None, deterministic: bool = False, mask: np.ndarray | None = None) -> ActOutput:
        """Sample (or, ``deterministic``, take the mode of) the policy for preprocessed ``obs``;
        with ``mask`` (``(rows, n)`` bool), among the legal actions only."""
        agent = self.agent
        if mask is not None:
            actions, log_probs, values = agent.act_masked(obs, mask, deterministic)
            return ActOutput(actions, to_env_actions(actions, agent.action_space), log_probs, values, state)
        if deterministic:
            return ActOutput(actions=agent.predict_preprocessed(obs), state=state)
        actions, log_probs, values = agent.act(obs)
        return ActOutput(actions, to_env_actions(actions, agent.action_space), log_probs, values, state)

    def prepare(self, obs: np.ndarray) -> np.ndarray:
        """Raw env observations as :meth:`act` takes them (flat float32, normalized with the current statistics)."""
        return self.agent.preprocess(obs, update_stats=False)

    def copy_factory(self, seed: int | None = None) -> Callable[[int], ActorCriticPolicy]:
        """A picklable recipe ``recipe(worker_index)`` of a CPU copy of this policy for a remote worker
        (sampling seeded per worker; weights come with :meth:`set_weights`)."""
        agent = self.agent
        return partial(
            _policy_copy, type(agent), agent.observation_space, agent.action_space, agent.config, seed, agent.algo,
            getattr(agent.network, "actor_inputs", None),
        )

    def get_weights(self) -> dict[str, np.ndarray]:
        """The network's parameters and buffers (and ``obs_rms/*`` when observations are normalized)."""
        weights = {f"network/{k}": v.detach().cpu().numpy() for k, v in self.agent.network.state_dict().items()}
        if self.agent.obs_rms is not None:
            weights.update({f"obs_rms/{k}": np.asarray(v) for k, v in self.agent.obs_rms.state().items()})
        return weights

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Load what :meth:`get_weights` gave."""
        network = {k[len("network/"):]: torch.as_tensor(v) for k, v in weights.items() if k.startswith("network/")}
        self.agent.network.load_state_dict(network)
        if self.agent.obs_rms is not None:
            self.agent.obs_rms.load({k[len("obs_rms/"):]: v for k, v in weights.items() if k.startswith("obs_rms/")})


def _policy_copy(
    agent_class: type[ActorCriticAgent], observation_space: Any, action_space: Any, config: OnPolicyConfig, seed: int | None,
    algo: str, actor_inputs: int | None, worker: int = 0,
) -> ActorCriticPolicy:
    """A fresh CPU agent like the driver's, as a collection policy (see :meth:`ActorCriticPolicy.copy_factory`)."""
    seed = None if seed is None else seed + 7919 * (worker + 1)  # every worker samples its own actions
    agent = agent_class(observation_space, action_space, config, "cpu", seed, algo=algo, actor_inputs=actor_inputs)
    return ActorCriticPolicy(agent)


#: ``update(agent, batch, progress_remaining) -> metrics``: one learning step on a rollout;
#: ``progress_remaining`` goes from 1 to 0 over the run (for schedules).
Update = Callable[[ActorCriticAgent, RolloutBatch, float], dict[str, float]]

#: ``reward_fn(trajectory) -> (rewards, metrics)``: the rewards to learn from, ``(num_steps, rows)``
#: like ``trajectory.rewards``, which they replace for the targets and the update only (logged
#: episode returns stay the environment's), and metrics to log with the update's (GAIL's and AIRL's
#: discriminator: it is the one place between collection and advantages where rewards are relabelled).
RewardFn = Callable[[Trajectory], tuple[np.ndarray, dict[str, float]]]
#: ``after_update(trajectory) -> metrics``: called once the update on ``trajectory`` is done, before
#: metrics, evaluation and checkpoints (GAIL's and AIRL's discriminator learns here: on the rollout,
#: seen by the updated policy, as in imitation's round).
AfterUpdate = Callable[[Trajectory], dict[str, float]]


# --------------------------------------------------------------------------- training loop


def train_on_policy(
    env_factory: Callable[[int | None], Any],
    agent: ActorCriticAgent,
    config: OnPolicyConfig,
    artifacts: dict[str, Any],
    save_callback: Callable[..., None] | None,
    context: TrainContext | None,
    update: Update,
    *,
    reward_fn: RewardFn | None = None,
    after_update: AfterUpdate | None = None,
) -> ActorCriticAgent:
    """Collect rollouts and call ``update`` until ``config.total_steps`` (continues from ``agent.global_step``).

    ``context`` (from the run machinery) provides the rollout source settings, the metric logger,
    the progress display and the checkpoint callback. Without it (a Crete-style call) 8 sync
    envs are built from ``env_factory`` and checkpoints go through ``save_callback``.
    Writes ``artifacts["evaluations"]`` (step, mean_return, std_return, train_seconds) and
    ``artifacts["time_split"]`` (seconds in env / inference / learn).
    ``reward_fn`` (see :data:`RewardFn`): learned rewards replace the env's for learning (GAIL, AIRL);
    ``after_update`` (see :data:`AfterUpdate`): what learns from the rollout after the policy did.
    """
    from daedalus.algos.multi_policy import PolicySet, train_policy_set

    if isinstance(agent, PolicySet):  # a multi-agent env: several policies at once
        if reward_fn is not None or after_update is not None:
            raise ValueError("learned rewards (reward_fn, after_update) are not supported with several policies yet")
        if context is None:
            raise ValueError("training several policies needs the run's context (daedalus train, or daedalus.train())")
        train_policy_set(env_factory, agent, config, artifacts, context, update, ActorCriticPolicy)
        return agent
    context = context or default_context(agent.algo, env_factory, artifacts, save_callback, num_envs=8)
    previous_threads = set_torch_threads(config.torch_threads)
    # Observations are normalized as they leave the envs (VecNormalize's place), so the
    # trajectory holds what the policy saw.
    source = make_source(context, lambda obs, update: agent.preprocess(obs, update_stats=update), obs_stats=agent.obs_rms)
    try:
        if source.num_agents > 1 and config.eval_every_steps > 0:
            raise ProfileError(
                f"{agent.algo}: periodic evaluation of multi-agent environments ({source.num_agents} agents per "
                "copy) is not supported yet. Set config.eval_every_steps: 0 and config.final_eval_episodes: 0."
            )
        _train_loop(source, env_factory, agent, config, artifacts, context, update, reward_fn=reward_fn, after_update=after_update)
    finally:
        summary = getattr(source, "summary", None)
        if summary is not None:
            artifacts["rollout"] = summary()
        source.close()
        restore_torch_threads(previous_threads)
    return agent


def _train_loop(
    source: LocalSource,
    env_factory: Callable[[int | None], Any],
    agent: ActorCriticAgent,
    config: OnPolicyConfig,
    artifacts: dict[str, Any],
    context: TrainContext,
    update: Update,
    *,
    reward_fn: RewardFn | None = None,
    after_update: AfterUpdate | None = None,
) -> None:
    policies = {DEFAULT_GROUP: ActorCriticPolicy(agent)}
    source.reset(seed=context.seed)  # before the training clock starts (Ray: starts the workers)
    schedule = TrainingSchedule(agent, config, context, env_factory, artifacts, source)
    metrics: dict[str, float] = {}
    while agent.global_step < config.total_steps:
        # Linear schedules from 1 to 0 over the whole run (CleanRL's `frac`, SB3's lin_<x>).
        progress_remaining = 1.0 - agent.global_step / config.total_steps
        if config.anneal_lr:
            for group in agent.optimizer.param_groups:
                group["lr"] = progress_remaining * config.learning_rate

        # ---- collect: num_steps steps of every env copy and agent, one batched forward per step
        trajectory = source.sample(policies, config.num_steps, policy_version=agent.num_updates)[DEFAULT_GROUP]
        # A Ray round may hold fewer rows than batch_size (workers that did not answer in time).
        agent.global_step += trajectory.num_transitions
        stop = schedule.rollout_end(trajectory.num_transitions, trajectory.episode_returns, trajectory.policy_version)

        # ---- relabel (GAIL, AIRL): learned rewards replace the env's for the targets and the update;
        # the episode returns logged above came from the source and stay the env's
        start = schedule.clock()
        rewards: np.ndarray = trajectory.rewards
        reward_metrics: dict[str, float] = {}
        if reward_fn is not None:
            rewards, reward_metrics = reward_fn(trajectory)

        # ---- targets: bootstrap truncated episodes from their real final observation, then GAE
        storage = RolloutStorage.wrap(
            trajectory.obs, trajectory.actions, trajectory.extras["log_probs"], trajectory.extras["values"],
            rewards, trajectory.terminated, trajectory.truncated, trajectory.valid,
        )
        if trajectory.truncated.any():
            steps, rows = np.nonzero(trajectory.truncated)
            storage.final_values[steps, rows] = agent.values(trajectory.next_obs[steps, rows])
        storage.compute_advantages(agent.values(trajectory.last_obs), config.gamma, config.gae_lambda)

        # ---- update
        metrics = update(agent, storage.flat_batch(agent.device), progress_remaining)
        metrics["charts/learning_rate"] = agent.optimizer.param_groups[0]["lr"]
        metrics.update(reward_metrics)
        if after_update is not None:
            metrics.update(after_update(trajectory))
        schedule.learn_time += schedule.clock() - start
        stop = schedule.update_end(agent.num_updates, partial(dict, metrics)) or stop

        # ---- metrics, evaluation, checkpoints
        if schedule.step(partial(dict, metrics)) or stop:
            break
    schedule.finish()
