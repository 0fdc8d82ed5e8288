"""Deep Q-Network (Mnih et al. 2015), with the Double DQN target as an option (van Hasselt et al. 2016).

One file, top to bottom in the order the algorithm runs (CleanRL's ``dqn.py`` layout):
config → agent (Q-network, target network, optimizer, exploration RNG, state) → loss → update →
training loop → registration. Built from shared, unit-tested pieces: the replay buffer
(:mod:`daedalus.buffers.replay`, n-step returns inside), the collector (:mod:`daedalus.rollout.collector`,
the only place envs are stepped), :func:`daedalus.nn.offpolicy.polyak_update` and the linear
epsilon schedule of :mod:`daedalus.sampling`.

Semantics follow Stable-Baselines3's DQN so that rl-zoo3 hyperparameters carry over: the target
network is updated every ``target_update_interval_steps`` *environment* steps, ``gradient_steps``
gradient steps are taken every ``train_frequency_steps`` environment steps once ``learning_starts``
steps are collected (random actions before), Huber loss, gradient norm clipped to 10.

To add a loss term, wrap :func:`dqn_loss`: it is a plain function of a batch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from daedalus.agents.base import TensorAgent
from daedalus.algos.common import (
    custom_loss,
    load_optimizer,
    optimizer_tensors,
    train_replay,
)
from daedalus.algos.multi_policy import replay_on_policy_sets
from daedalus.buffers.replay import ReplayBuffer, ReplaySample
from daedalus.errors import ProfileError
from daedalus.nn.flat import FLAT_ACTIVATIONS, FlatMLP
from daedalus.nn.offpolicy import polyak_update
from daedalus.nn.optim import Adam
from daedalus.params import (
    AT_LEAST_ONE,
    NONNEGATIVE,
    POSITIVE,
    PROBABILITY,
    UNIT,
    check_fields,
    param,
)
from daedalus.sampling import LinearSchedule
from daedalus.specs import AgentSpec
from daedalus.types import TrainContext

__all__ = ["AGENT_SPEC", "DQNAgent", "DQNConfig", "dqn_closed_form_step", "dqn_loss", "dqn_targets", "dqn_update", "make_dqn_agent", "train_dqn"]


# --------------------------------------------------------------------------- config


@dataclass
class DQNConfig:
    """DQN hyperparameters (SB3 / rl-zoo3 vocabulary, CartPole-v1 zoo values as defaults)."""

    total_steps: int = param(50_000, "Environment steps to train for, summed over all envs and agents.", AT_LEAST_ONE)
    learning_rate: float = param(2.3e-3, "Adam learning rate.", POSITIVE)
    adam_eps: float = param(1e-8, "Adam epsilon (torch's and SB3's default).", POSITIVE)
    buffer_size: int = param(100_000, "Replay buffer capacity in transitions.", AT_LEAST_ONE)
    learning_starts: int = param(1_000, "Environment steps of uniformly random actions before learning starts.", NONNEGATIVE)
    batch_size: int = param(64, "Transitions per gradient step.", AT_LEAST_ONE)
    gamma: float = param(0.99, "Discount factor.", UNIT)
    n_steps: int = param(1, "n-step returns (1 = the classic one-step TD target).", AT_LEAST_ONE)
    tau: float = param(1.0, "Target update coefficient: 1 copies the Q-network (hard update), < 1 is Polyak averaging.", PROBABILITY)
    target_update_interval_steps: int = param(10, "Update the target network every this many environment steps.", AT_LEAST_ONE)
    train_frequency_steps: int = param(256, "Run an update (gradient_steps gradient steps) every this many environment steps.", AT_LEAST_ONE)
    gradient_steps: int = param(128, "Gradient steps per update.", AT_LEAST_ONE)
    double_dqn: bool = param(False, "Double DQN target: the online network picks the next action, the target network values it.")
    exploration_initial_eps: float = param(1.0, "Epsilon of the epsilon-greedy policy at step 0.", UNIT)
    exploration_final_eps: float = param(0.04, "Epsilon after the linear decay.", UNIT)
    exploration_fraction: float = param(0.16, "Fraction of total_steps over which epsilon decays linearly.", PROBABILITY)
    max_grad_norm: float = param(10.0, "Global gradient-norm clipping threshold.", POSITIVE)
    hidden_sizes: list[int] = param([256, 256], "Hidden layer sizes of the Q-network MLP.", AT_LEAST_ONE)
    activation: str = param("relu", f"Hidden activation: one of {list(FLAT_ACTIVATIONS)}.", choices=FLAT_ACTIVATIONS)
    loss: str | None = param(None, "A custom loss by reference (pkg.mod:fn or file.py:fn), called like dqn_loss(batch, q_network, target_network, config) -> (loss, metrics). It runs through autograd.", code=True)
    closed_form_gradients: bool = param(True, "Compute the Huber-loss gradient in closed form instead of with autograd (same numbers, ~2x faster gradient steps on a CPU).")
    save_buffer: bool = param(False, "Store the replay buffer in checkpoints (exact resume of the data too; large).")
    eval_every_steps: int = param(10_000, "Evaluate on separate env copies every this many steps; 0 disables.", NONNEGATIVE)
    eval_episodes: int = param(10, "Episodes per periodic evaluation.", AT_LEAST_ONE)
    eval_deterministic: bool = param(True, "Evaluate greedily instead of epsilon-greedy.")
    final_eval_episodes: int = param(20, "Episodes of the evaluation run when training completes (written to eval.json); 0 disables.", NONNEGATIVE)
    target_return: float | None = param(None, "Stop training once a periodic evaluation's mean return reaches this; null disables.")
    checkpoint_every_steps: int = param(50_000, "Write a checkpoint step-<N> every this many steps; 0 disables.", NONNEGATIVE)
    keep_last: int = param(3, "Periodic checkpoints to keep (older ones are deleted by the run store).", NONNEGATIVE)
    log_every_steps: int = param(2_000, "Log metrics every this many steps.", AT_LEAST_ONE)
    torch_threads: int = param(1, "torch CPU threads while training; 1 is fastest for small MLPs on few cores; 0 keeps torch's default.", NONNEGATIVE)

    def __post_init__(self) -> None:
        check_fields(self)  # ranges and choices (a profile's values were checked on load already)
        self.hidden_sizes = [int(size) for size in self.hidden_sizes]


# --------------------------------------------------------------------------- agent


class DQNAgent(TensorAgent):
    """Q-network, target network, optimizer, exploration RNG, counters and (optionally) the replay buffer.

    :meth:`state_tensors` / :meth:`state_json` hold everything needed to act identically and to
    continue training exactly; the buffer is included when ``config.save_buffer``.
    """

    #: The networks that act while collecting (what Ray workers hold a copy of).
    acting_modules = ("q_network",)

    def __init__(self, observation_space: spaces.Space[Any], action_space: spaces.Space[Any], config: DQNConfig, device: str = "cpu", seed: int | None = None) -> None:
        super().__init__(name="dqn")
        if not isinstance(action_space, spaces.Discrete):
            raise ProfileError(f"DQN needs a Discrete action space, got {action_space}. Use SAC or TD3 for Box actions.")
        self.config, self.observation_space, self.action_space = config, observation_space, action_space
        self.device = torch.device(device)
        self.obs_dim = int(np.prod(observation_space.shape or ()))
        self.n_actions = int(action_space.n)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            if seed is not None:
                torch.manual_seed(seed)
            self.q_network = FlatMLP([self.obs_dim, *config.hidden_sizes, self.n_actions], config.activation).to(self.device)
        self.target_network = copy.deepcopy(self.q_network).requires_grad_(False)
        self.optimizer = Adam(self.q_network.parameters(), lr=config.learning_rate, eps=config.adam_eps)
        self.rng = np.random.default_rng(seed)  # exploration and replay sampling
        self.epsilon = LinearSchedule(config.exploration_initial_eps, config.exploration_final_eps, max(1, int(config.exploration_fraction * config.total_steps)))
        self.buffer: ReplayBuffer | None = None
        self.global_step = self.num_updates = self.num_episodes = 0

    # ---- acting
    def greedy(self, obs: np.ndarray) -> np.ndarray:
        """argmax_a Q(obs, a) for a batch of observations (one forward).

        A few rows on the CPU (acting during training, one env) run in numpy on the live weights,
        which costs a fifth of torch's dispatch; larger batches use torch.
        """
        obs = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
        if len(obs) <= 16 and self.device.type == "cpu":
            return self.q_network.forward_numpy(obs).argmax(-1)
        with torch.inference_mode():
            return self.q_network(torch.from_numpy(obs).to(self.device)).argmax(-1).cpu().numpy()

    def explore(self, obs: np.ndarray) -> np.ndarray:
        """Epsilon-greedy actions at the current step; uniformly random before ``learning_starts``."""
        rows = len(obs)
        epsilon = 1.0 if self.global_step < self.config.learning_starts else self.epsilon(self.global_step)
        actions = self.rng.integers(self.n_actions, size=rows)
        greedy_rows = np.flatnonzero(self.rng.random(rows) >= epsilon)
        if len(greedy_rows):  # no forward pass when every row explores
            actions[greedy_rows] = self.greedy(obs[greedy_rows])
        return actions

    def predict(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """Greedy actions (``deterministic``) or epsilon-greedy ones, for a batch of raw observations."""
        return self.greedy(np.asarray(obs)) if deterministic else self.explore(np.asarray(obs))

    # ---- state
    def state_tensors(self) -> dict[str, Any]:
        tensors: dict[str, Any] = {f"q_network/{k}": v for k, v in self.q_network.state_dict().items()}
        tensors.update({f"target_network/{k}": v for k, v in self.target_network.state_dict().items()})
        tensors.update(optimizer_tensors("optimizer", self.optimizer)[0])
        if self.config.save_buffer and self.buffer is not None:
            tensors.update({f"buffer/{k}": v for k, v in self.buffer.state_arrays().items()})
        return tensors

    def state_json(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "algo": "dqn",
            "config": asdict(self.config),
            "counters": {"global_step": self.global_step, "num_updates": self.num_updates, "num_episodes": self.num_episodes},
            "optimizer_param_groups": optimizer_tensors("optimizer", self.optimizer)[1],
            "rng": dict(self.rng.bit_generator.state),
        }
        if self.config.save_buffer and self.buffer is not None:
            state["buffer"] = {"capacity": self.buffer.capacity, "num_rows": self.buffer.num_rows, "rng": self.buffer.rng_state()}
        return state

    def load_state(self, tensors: dict[str, Any], state: dict[str, Any]) -> None:
        def part(prefix: str) -> dict[str, Any]:
            return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + "/")}

        self.q_network.load_state_dict(part("q_network"))
        self.target_network.load_state_dict(part("target_network"))
        load_optimizer("optimizer", self.optimizer, tensors, state.get("optimizer_param_groups", []))
        counters = state.get("counters", {})
        self.global_step = int(counters.get("global_step", 0))
        self.num_updates = int(counters.get("num_updates", 0))
        self.num_episodes = int(counters.get("num_episodes", 0))
        if "buffer" in state:  # before restoring the RNG: make_buffer draws a seed from it
            info = state["buffer"]
            self.buffer = self.make_buffer(info["capacity"], info["num_rows"])
            self.buffer.load_state_arrays(part("buffer"), info["rng"])
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]

    def make_buffer(self, capacity: int, num_rows: int) -> ReplayBuffer:
        """An empty replay buffer shaped for this agent (sampling seeded from the agent's RNG)."""
        seed = int(self.rng.integers(2**63))
        return ReplayBuffer(capacity, num_rows, (self.obs_dim,), (), np.float32, np.int64, seed=seed)


def make_dqn_agent(observation_space: spaces.Space[Any], action_space: spaces.Space[Any], config: DQNConfig | None = None, device: str = "cpu", seed: int | None = None) -> DQNAgent:
    """The registered agent factory (arguments are picked by name by the registry)."""
    return DQNAgent(observation_space, action_space, config or DQNConfig(), device=device, seed=seed)


# --------------------------------------------------------------------------- loss


@torch.no_grad()
def dqn_targets(q_network: nn.Module, target_network: nn.Module, batch: ReplaySample, config: DQNConfig) -> torch.Tensor:
    """``r + discount * (1 - terminated) * Q_target(s', a*)``, ``a* = argmax Q_target(s', .)`` (``argmax Q(s', .)`` for Double DQN).

    Truncated transitions bootstrap (their ``s'`` is the real final observation); ``discount`` is
    ``gamma ** m`` for m-step returns.
    """
    next_q_target = target_network(batch.next_obs)
    if config.double_dqn:
        next_actions = q_network(batch.next_obs).argmax(-1, keepdim=True)
        next_q = next_q_target.gather(-1, next_actions).squeeze(-1)
    else:
        next_q = next_q_target.amax(-1)
    return batch.rewards + batch.discounts * (1.0 - batch.terminated) * next_q


def dqn_loss(batch: ReplaySample, q_network: nn.Module, target_network: nn.Module, config: DQNConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Huber loss between Q(s, a) and :func:`dqn_targets` on one batch; metrics stay tensors."""
    targets = dqn_targets(q_network, target_network, batch, config)
    q_values = q_network(batch.obs).gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
    loss = nn.functional.smooth_l1_loss(q_values, targets)
    with torch.no_grad():
        metrics = {"loss/td": loss.detach(), "loss/td_error": (q_values - targets).abs().mean(), "loss/q_values": q_values.mean()}
    return loss, metrics


# --------------------------------------------------------------------------- update


def dqn_closed_form_step(agent: DQNAgent, obs: torch.Tensor, actions_one_hot: torch.Tensor, targets: torch.Tensor, config: DQNConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """One gradient step of :func:`dqn_loss` with the gradient written in closed form (no autograd).

    ``d Huber / d Q(s, a) = clamp(Q(s, a) - target, -1, 1) / batch_size`` on the taken action
    (``actions_one_hot``), 0 elsewhere; :meth:`FlatMLP.backward` carries it to the weights. Equal to
    autograd's gradient (unit-tested); then global-norm clipping and the Adam step, as in the
    autograd path. Returns ``(td_errors, grad_norm)`` as tensors.
    """
    q_network = agent.q_network
    with torch.no_grad():
        q_all, inputs = q_network.forward_cached(obs)
        error = (q_all * actions_one_hot).sum(-1) - targets
        grad_q = actions_one_hot * error.clamp(-1.0, 1.0).mul_(1.0 / len(error)).unsqueeze_(-1)
        q_network.backward(inputs, grad_q)
        grad = q_network.flat.grad
        assert grad is not None
        # clip_grad_norm_'s formula, without a host sync: scale = min(1, max_norm / (norm + 1e-6)).
        grad_norm = grad.norm()
        grad.mul_((config.max_grad_norm / (grad_norm + 1e-6)).clamp_(max=1.0))
    agent.optimizer.step()
    return error, grad_norm


def dqn_update(
    agent: DQNAgent,
    buffer: ReplayBuffer,
    config: DQNConfig,
    loss_fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = None,
) -> dict[str, torch.Tensor]:
    """``gradient_steps`` gradient steps on batches drawn uniformly from ``buffer``; returns metrics (tensors).

    All batches of the update are drawn in one call (the buffer does not change during an
    update, so this is the same distribution as drawing them one by one). With ``loss_fn`` (or
    ``closed_form_gradients: false``) the gradient comes from autograd on ``loss_fn`` (default
    :func:`dqn_loss`), otherwise from :func:`dqn_closed_form_step`. Either way the metrics are
    those of the last gradient step, with the same keys (per-step reductions would cost as much
    as the step).
    """
    size = config.batch_size
    samples = buffer.sample(config.gradient_steps * size, config.n_steps, config.gamma).to_torch(agent.device)
    agent.num_updates += 1
    if loss_fn is None and config.closed_form_gradients:
        # The target network does not change during an update: without Double DQN every
        # batch's target comes from one large forward pass instead of gradient_steps small ones.
        all_targets = None if config.double_dqn else dqn_targets(agent.q_network, agent.target_network, samples, config)
        one_hot = torch.nn.functional.one_hot(samples.actions, agent.n_actions).float()
        for index in range(config.gradient_steps):
            rows = slice(index * size, (index + 1) * size)
            if all_targets is None:
                targets = dqn_targets(agent.q_network, agent.target_network, samples.slice(rows.start, rows.stop), config)
            else:
                targets = all_targets[rows]
            error, grad_norm = dqn_closed_form_step(agent, samples.obs[rows], one_hot[rows], targets, config)
        with torch.no_grad():
            abs_error = error.abs()
            huber = torch.where(abs_error < 1.0, 0.5 * error * error, abs_error - 0.5).mean()
            q_mean = (error + targets).mean()  # error = Q(s, a) - target
        return {"loss/td": huber, "loss/td_error": abs_error.mean(), "loss/q_values": q_mean, "loss/grad_norm": grad_norm}
    parameters = list(agent.q_network.parameters())
    metrics: dict[str, torch.Tensor] = {}
    for index in range(config.gradient_steps):
        batch = samples.slice(index * size, (index + 1) * size)
        loss, metrics = (loss_fn or dqn_loss)(batch, agent.q_network, agent.target_network, config)
        agent.optimizer.zero_grad()
        loss.backward()
        metrics["loss/grad_norm"] = nn.utils.clip_grad_norm_(parameters, config.max_grad_norm, foreach=True)
        agent.optimizer.step()
    # The last gradient step's metrics, as the closed-form path reports (same columns either way).
    return metrics



# --------------------------------------------------------------------------- training loop


@replay_on_policy_sets
def train_dqn(
    env_factory: Callable[[int | None], Any],
    agent: DQNAgent,
    config: DQNConfig,
    artifacts: dict[str, Any],
    save_callback: Callable[..., None] | None = None,
    context: TrainContext | None = None,
    *,
    source: Any = None,
    evaluator: Callable[..., Any] | None = None,
) -> DQNAgent:
    """Train ``agent`` with DQN until ``config.total_steps`` (continues from ``agent.global_step``).

    On a multi-agent env ``agent`` is a one-policy PolicySet: independent Q-learning with one
    shared network (``source`` and ``evaluator`` then come from the multi-agent source).

    ``context`` provides the vector-env settings, logger, progress display and checkpoint callback
    (without it: one sync env and checkpoints through ``save_callback``). The loop is shared with
    SAC and TD3 (:func:`daedalus.algos.common.train_replay`). Writes ``artifacts["evaluations"]``
    and ``artifacts["time_split"]``.
    """


    def update_target(previous: int) -> None:
        # SB3's schedule: counted in environment steps, checked before learning.
        every = config.target_update_interval_steps
        if agent.global_step // every > previous // every:
            polyak_update(agent.target_network.parameters(), agent.q_network.parameters(), config.tau)

    def extra_metrics() -> dict[str, float]:
        assert agent.buffer is not None
        return {"charts/epsilon": agent.epsilon(agent.global_step), "charts/buffer_size": float(len(agent.buffer))}

    train_replay(
        env_factory, agent, config, artifacts, save_callback, context, "dqn",
        partial(dqn_update, loss_fn=None if config.loss is None else custom_loss(context, config.loss, dqn_loss)),
        every_step=update_target, extra_metrics=extra_metrics, source=source, evaluator=evaluator,
    )
    return agent


# --------------------------------------------------------------------------- registration

AGENT_SPEC = AgentSpec(
    agent_id="dqn",
    agent_factory=make_dqn_agent,
    training_wrapper=train_dqn,
    description="Deep Q-Network (optionally Double DQN, n-step), MLP Q-network, replay buffer",
    config_class=DQNConfig,
    action_spaces=("Discrete",),
    flat_observations=True,
)
