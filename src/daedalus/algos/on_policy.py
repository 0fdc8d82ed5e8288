"""What PPO and A2C share: the actor-critic agent and the on-policy training loop.

The loop reads top to bottom: collect ``num_steps`` steps from every env copy (one batched
forward per step), bootstrap truncated episodes from their real final observation, compute
GAE targets, hand the flat batch to the algorithm's ``update``, then log, evaluate and
checkpoint. An algorithm file (``ppo.py``, ``a2c.py``) supplies its config, its optimizer and
its ``update(agent, batch, progress_remaining) -> metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from daedalus.agents.base import TensorAgent
from daedalus.algos import policy_gradient
from daedalus.algos.common import default_context, make_worker
from daedalus.buffers.rollout import RolloutBatch, RolloutStorage
from daedalus.errors import ProfileError
from daedalus.evaluation import evaluate
from daedalus.nn.distributions import to_env_actions
from daedalus.nn.networks import ACTIVATIONS, ActorCritic
from daedalus.nn.normalization import RunningMeanStd
from daedalus.params import AT_LEAST_ONE, NONNEGATIVE, POSITIVE, UNIT, check_fields, param
from daedalus.rollout.worker import RolloutWorker
from daedalus.types import TrainContext

__all__ = ["ActorCriticAgent", "OnPolicyConfig", "Update", "train_on_policy"]


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
    closed_form_gradients: bool = param(True, "Use the hand-derived gradient of the built-in loss (MLP, tanh/relu, categorical/Gaussian) instead of autograd: same result, several times faster on a CPU.")
    rollout_worker: str = param("serial", "'serial' (envs in this process) or 'subprocess' (envs in a child process).", choices=("serial", "subprocess"))

    def __post_init__(self) -> None:
        check_fields(self)  # ranges and choices (a profile's values were checked on load already)
        self.hidden_sizes = [int(size) for size in self.hidden_sizes]


# --------------------------------------------------------------------------- agent


class ActorCriticAgent(TensorAgent):
    """Actor-critic policy, its optimizer, observation statistics, counters and RNG.

    Subclasses choose the optimizer (:meth:`make_optimizer`); the rest is shared by PPO and A2C.

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
    ) -> None:
        super().__init__(name=self.algo)
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
                obs_dim, action_space, config.hidden_sizes, config.activation, config.shared_trunk, config.log_std_init
            ).to(self.device)
        self._functional = policy_gradient.supports(self.network)
        # Acting on a few observations: numpy forward + numpy sampling (no torch dispatch per step).
        self._numpy_acting = self._functional and self.device.type == "cpu"
        self.rng = np.random.default_rng(seed)  # action sampling while collecting (numpy acting)
        #: The network's parameters, listed once (nn.Module.parameters() walks the module tree).
        self.parameters: list[torch.Tensor] = list(self.network.parameters())
        self.optimizer = self.make_optimizer(self.parameters)
        self.obs_rms = RunningMeanStd(self.obs_shape, clip=config.obs_clip) if config.normalize_obs else None
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed if seed is not None else int(torch.randint(2**31, ()).item()))
        self.global_step = 0
        self.num_updates = 0
        self.num_episodes = 0

    #: Name stored in checkpoints and shown in logs.
    algo = "actor-critic"

    def make_optimizer(self, parameters: list[torch.Tensor]) -> Any:
        """The optimizer of ``parameters`` (it must have ``param_groups``, ``step``, ``state_dict``)."""
        raise NotImplementedError

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

    @torch.inference_mode()
    def predict(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """Env-ready actions for a batch of raw observations (Box actions clipped to bounds)."""
        policy_out, _ = self._forward(self._tensor(self.preprocess(np.asarray(obs))))
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


#: ``update(agent, batch, progress_remaining) -> metrics``: one learning step on a rollout;
#: ``progress_remaining`` goes from 1 to 0 over the run (for schedules).
Update = Callable[[ActorCriticAgent, RolloutBatch, float], dict[str, float]]


# --------------------------------------------------------------------------- training loop


def train_on_policy(
    env_factory: Callable[[int | None], Any],
    agent: ActorCriticAgent,
    config: OnPolicyConfig,
    artifacts: dict[str, Any],
    save_callback: Callable[..., None] | None,
    context: TrainContext | None,
    update: Update,
) -> ActorCriticAgent:
    """Collect rollouts and call ``update`` until ``config.total_steps`` (continues from ``agent.global_step``).

    ``context`` (from the run machinery) provides the vector-env settings, the metric logger,
    the progress display and the checkpoint callback. Without it (a Crete-style call) 8 sync
    envs are built from ``env_factory`` and checkpoints go through ``save_callback``.
    Writes ``artifacts["evaluations"]`` (step, mean_return, std_return, train_seconds) and
    ``artifacts["time_split"]`` (seconds in env / inference / learn).
    """
    context = context or default_context(agent.algo, env_factory, artifacts, save_callback, num_envs=8)
    previous_threads = torch.get_num_threads()
    if config.torch_threads > 0:
        torch.set_num_threads(config.torch_threads)
    worker = make_worker(context, config.rollout_worker)
    if worker.num_agents > 1 and config.eval_every_steps > 0:
        worker.close()
        torch.set_num_threads(previous_threads)
        raise ProfileError(
            f"{agent.algo}: periodic evaluation of multi-agent environments ({worker.num_agents} agents per "
            "copy) is not supported yet. Set config.eval_every_steps: 0 and config.final_eval_episodes: 0."
        )
    try:
        _train_loop(worker, env_factory, agent, config, artifacts, context, update)
    finally:
        worker.close()
        torch.set_num_threads(previous_threads)
    return agent


def _train_loop(
    worker: RolloutWorker,
    env_factory: Callable[[int | None], Any],
    agent: ActorCriticAgent,
    config: OnPolicyConfig,
    artifacts: dict[str, Any],
    context: TrainContext,
    update: Update,
) -> None:
    action_space = worker.action_space
    discrete = isinstance(action_space, (spaces.Discrete, spaces.MultiDiscrete))
    storage = RolloutStorage(
        config.num_steps,
        worker.batch_size,
        (int(np.prod(agent.obs_shape)),),
        tuple(action_space.shape or ()),
        action_dtype=np.int64 if discrete else np.float32,
    )
    steps_per_rollout = config.num_steps * worker.batch_size
    seed = context.seed if context.seed is not None else 0
    evaluations: list[dict[str, float]] = artifacts.setdefault("evaluations", [])
    best_return = max((e["mean_return"] for e in evaluations), default=-np.inf)
    recent_returns: list[float] = []
    inference_time = learn_time = 0.0
    train_start = time.perf_counter()
    excluded_time = 0.0  # evaluation and checkpoint time: not part of the training clock
    next_log = agent.global_step + config.log_every_steps
    next_eval = agent.global_step + config.eval_every_steps if config.eval_every_steps > 0 else None
    next_checkpoint = agent.global_step + config.checkpoint_every_steps if config.checkpoint_every_steps > 0 else None

    next_obs = agent.preprocess(worker.reset(seed=context.seed), update_stats=True)
    while agent.global_step < config.total_steps:
        # Linear schedules from 1 to 0 over the whole run (CleanRL's `frac`, SB3's lin_<x>).
        progress_remaining = 1.0 - agent.global_step / config.total_steps
        if config.anneal_lr:
            for group in agent.optimizer.param_groups:
                group["lr"] = progress_remaining * config.learning_rate

        # ---- collect: one batched forward per step for all envs and agents
        storage.reset()
        for _ in range(config.num_steps):
            start = time.perf_counter()
            actions, logprobs, values = agent.act(next_obs)
            inference_time += time.perf_counter() - start
            step = worker.step(to_env_actions(actions, action_space))
            storage.add(next_obs, actions, logprobs, values, step.rewards, step.terminated, step.truncated, step.valid)
            if step.truncated.any():
                # Bootstrap truncated episodes from their real final observation, not the reset one.
                rows = np.flatnonzero(step.truncated)
                start = time.perf_counter()
                storage.set_final_values(rows, agent.values(agent.preprocess(step.final_obs[rows])))
                inference_time += time.perf_counter() - start
            next_obs = agent.preprocess(step.obs, update_stats=True)
            if len(step.episode_returns):
                agent.num_episodes += len(step.episode_returns)
                recent_returns.extend(step.episode_returns.tolist())
        agent.global_step += steps_per_rollout

        # ---- targets and update
        start = time.perf_counter()
        last_values = agent.values(next_obs)
        storage.compute_advantages(last_values, config.gamma, config.gae_lambda)
        metrics = update(agent, storage.flat_batch(agent.device), progress_remaining)
        learn_time += time.perf_counter() - start

        # ---- metrics, evaluation, checkpoints
        train_seconds = time.perf_counter() - train_start - excluded_time
        if agent.global_step >= next_log or agent.global_step >= config.total_steps:
            next_log += config.log_every_steps
            env_time = worker.env_time
            metrics.update({
                "charts/learning_rate": agent.optimizer.param_groups[0]["lr"],
                "charts/steps_per_second": agent.global_step / max(train_seconds, 1e-9),
                "time/env": env_time,
                "time/inference": inference_time,
                "time/learn": learn_time,
                "time/other": max(train_seconds - env_time - inference_time - learn_time, 0.0),
            })
            if recent_returns:
                metrics["charts/episode_return"] = float(np.mean(recent_returns[-20:]))
            context.logger.log(agent.global_step, metrics)
            context.progress.update(
                steps=agent.global_step,
                episodes=agent.num_episodes,
                last_return=recent_returns[-1] if recent_returns else None,
                env_s=round(env_time, 2),
                inference_s=round(inference_time, 2),
                learn_s=round(learn_time, 2),
            )

        stop = False
        excluded_start = time.perf_counter()
        if next_eval is not None and (agent.global_step >= next_eval or agent.global_step >= config.total_steps):
            next_eval += config.eval_every_steps
            result = evaluate(agent, env_factory, n_episodes=config.eval_episodes, deterministic=config.eval_deterministic, seed=seed + 10_000)
            mean, std = float(result.mean_return), float(result.std_return)
            evaluations.append({"step": agent.global_step, "mean_return": mean, "std_return": std, "train_seconds": train_seconds})
            context.logger.log(agent.global_step, {"eval/mean_return": mean, "eval/std_return": std})
            if mean > best_return:
                best_return = mean
                context.checkpoint(agent, "best", agent.global_step)
            stop = config.target_return is not None and mean >= config.target_return
        if next_checkpoint is not None and agent.global_step >= next_checkpoint:
            next_checkpoint += config.checkpoint_every_steps
            context.checkpoint(agent, f"step-{agent.global_step}", agent.global_step)
        excluded_time += time.perf_counter() - excluded_start
        if stop:
            break

    artifacts["time_split"] = {
        "train_seconds": time.perf_counter() - train_start - excluded_time,
        "env": worker.env_time,
        "inference": inference_time,
        "learn": learn_time,
        "steps": agent.global_step,
    }
