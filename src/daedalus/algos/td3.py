"""Twin Delayed DDPG (Fujimoto et al. 2018): twin critics, target policy smoothing, delayed actor.

One file, top to bottom in the order the algorithm runs (CleanRL's ``td3_continuous_action.py``
layout): config → agent (deterministic actor, twin Q critics, their targets, optimizers, state) →
losses → update → training loop → registration. Built from shared, unit-tested pieces: the replay
buffer (:mod:`daedalus.buffers.replay`), the collector (:mod:`daedalus.rollout.collector`, the only
place envs are stepped) and :mod:`daedalus.nn.offpolicy` (twin critics as one batched ensemble,
Polyak averaging).

Semantics follow Stable-Baselines3's TD3 so that rl-zoo3 hyperparameters carry over: actions live
in ``[-1, 1]`` (rescaled to the Box bounds for the env), Gaussian exploration noise added there and
clipped, uniformly random actions for the first ``learning_starts`` steps, the actor and *both*
target networks updated every ``policy_delay`` critic updates.

Each loss is a plain function of a batch (:func:`td3_critic_loss`, :func:`td3_actor_loss`).
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
from daedalus.nn.networks import ACTIVATIONS
from daedalus.nn.offpolicy import DeterministicActor, EnsembleMLP, Workspace, polyak_update
from daedalus.nn.optim import Adam, Optimizer
from daedalus.params import (
    AT_LEAST_ONE,
    NONNEGATIVE,
    POSITIVE,
    PROBABILITY,
    UNIT,
    check_fields,
    param,
)
from daedalus.specs import AgentSpec
from daedalus.types import TrainContext

__all__ = ["AGENT_SPEC", "TD3Agent", "TD3Config", "make_td3_agent", "td3_actor_loss", "td3_autograd_actor_step", "td3_autograd_critic_step", "td3_closed_form_actor_step", "td3_closed_form_critic_step", "td3_critic_loss", "td3_targets", "td3_update", "train_td3"]


# --------------------------------------------------------------------------- config


@dataclass
class TD3Config:
    """TD3 hyperparameters (SB3 / rl-zoo3 vocabulary; defaults are the Pendulum-v1 zoo values)."""

    total_steps: int = param(20_000, "Environment steps to train for, summed over all envs and agents.", AT_LEAST_ONE)
    learning_rate: float = param(1e-3, "Adam learning rate of the actor and the critics.", POSITIVE)
    buffer_size: int = param(200_000, "Replay buffer capacity in transitions.", AT_LEAST_ONE)
    learning_starts: int = param(10_000, "Environment steps of uniformly random actions before learning starts.", NONNEGATIVE)
    batch_size: int = param(256, "Transitions per gradient step.", AT_LEAST_ONE)
    gamma: float = param(0.98, "Discount factor.", UNIT)
    n_steps: int = param(1, "n-step returns for the critic target (1 = one-step TD).", AT_LEAST_ONE)
    tau: float = param(0.005, "Polyak coefficient of the target actor and critics.", PROBABILITY)
    policy_delay: int = param(2, "Update the actor and the targets every this many critic updates.", AT_LEAST_ONE)
    exploration_noise: float = param(0.1, "Std of the Gaussian noise added to actions in [-1, 1] while collecting.", NONNEGATIVE)
    target_policy_noise: float = param(0.2, "Std of the smoothing noise added to the target policy's actions.", NONNEGATIVE)
    target_noise_clip: float = param(0.5, "Clip of the target smoothing noise.", NONNEGATIVE)
    train_frequency_steps: int = param(1, "Run an update (gradient_steps gradient steps) every this many environment steps.", AT_LEAST_ONE)
    gradient_steps: int = param(1, "Gradient steps per update.", AT_LEAST_ONE)
    hidden_sizes: list[int] = param([400, 300], "Hidden layer sizes of the actor and of each critic.", AT_LEAST_ONE)
    activation: str = param("relu", f"Hidden activation: one of {sorted(ACTIVATIONS)}.", choices=sorted(ACTIVATIONS))
    critic_loss: str | None = param(None, "A custom critic loss by reference (pkg.mod:fn or file.py:fn), called like td3_critic_loss(batch, agent, config): (loss, metrics). The update then runs through autograd.", code=True)
    actor_loss: str | None = param(None, "A custom actor loss by reference, called like td3_actor_loss(obs, agent): (loss, metrics). The update then runs through autograd.", code=True)
    closed_form_gradients: bool = param(True, "Compute the critic and actor gradients in closed form instead of with autograd (same numbers to float precision, ~2x faster gradient steps on a CPU; relu and tanh networks, autograd otherwise).")
    save_buffer: bool = param(False, "Store the replay buffer in checkpoints (exact resume of the data too; large).")
    eval_every_steps: int = param(5_000, "Evaluate on separate env copies every this many steps; 0 disables.", NONNEGATIVE)
    eval_episodes: int = param(10, "Episodes per periodic evaluation.", AT_LEAST_ONE)
    eval_deterministic: bool = param(True, "Evaluate without exploration noise.")
    final_eval_episodes: int = param(20, "Episodes of the evaluation run when training completes (written to eval.json); 0 disables.", NONNEGATIVE)
    target_return: float | None = param(None, "Stop training once a periodic evaluation's mean return reaches this; null disables.")
    checkpoint_every_steps: int = param(10_000, "Write a checkpoint step-<N> every this many steps; 0 disables.", NONNEGATIVE)
    keep_last: int = param(3, "Periodic checkpoints to keep (older ones are deleted by the run store).", NONNEGATIVE)
    log_every_steps: int = param(1_000, "Log metrics every this many steps.", AT_LEAST_ONE)
    torch_threads: int = param(1, "torch CPU threads while training; 0 keeps torch's default.", NONNEGATIVE)

    def __post_init__(self) -> None:
        check_fields(self)  # ranges and choices (a profile's values were checked on load already)
        self.hidden_sizes = [int(size) for size in self.hidden_sizes]


# --------------------------------------------------------------------------- agent


class TD3Agent(TensorAgent):
    """Actor, twin critics, their targets and optimizers, RNGs, counters, optional buffer."""

    #: The networks that act while collecting (what Ray workers hold a copy of).
    acting_modules = ("actor",)

    def __init__(self, observation_space: spaces.Space[Any], action_space: spaces.Space[Any], config: TD3Config, device: str = "cpu", seed: int | None = None) -> None:
        super().__init__(name="td3")
        if not isinstance(action_space, spaces.Box):
            raise ProfileError(f"TD3 needs a Box action space, got {action_space}. Use DQN for Discrete actions.")
        self.config, self.observation_space, self.action_space = config, observation_space, action_space
        self.device = torch.device(device)
        self.obs_dim = int(np.prod(observation_space.shape or ()))
        self.action_dim = int(np.prod(action_space.shape))
        self.action_low = action_space.low.reshape(-1).astype(np.float32)
        self.action_high = action_space.high.reshape(-1).astype(np.float32)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            if seed is not None:
                torch.manual_seed(seed)
            self.actor = DeterministicActor(self.obs_dim, self.action_dim, config.hidden_sizes, config.activation).to(self.device)
            self.critic = EnsembleMLP(2, self.obs_dim + self.action_dim, config.hidden_sizes, 1, config.activation).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optimizer = Adam(self.actor.parameters(), lr=config.learning_rate)
        self.critic_optimizer = Adam(self.critic.parameters(), lr=config.learning_rate)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed if seed is not None else int(np.random.SeedSequence().generate_state(1)[0]))
        self.rng = np.random.default_rng(seed)  # exploration noise, warm-up actions, the buffer's seed
        self.buffer: ReplayBuffer | None = None
        self.workspace = Workspace()  # reused tensors of the closed-form gradient step
        self.global_step = self.num_updates = self.num_episodes = 0

    # ---- acting (actions in [-1, 1] inside the algorithm, Box bounds for the env)
    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """Rescale ``[-1, 1]`` actions to the Box bounds."""
        return (self.action_low + (actions + 1.0) * 0.5 * (self.action_high - self.action_low)).reshape((len(actions),) + self.action_space.shape)

    def _flat(self, obs: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)).to(self.device)

    @torch.inference_mode()
    def explore(self, obs: np.ndarray) -> np.ndarray:
        """Training actions in ``[-1, 1]``: uniform before ``learning_starts``, then actor + clipped Gaussian noise."""
        if self.global_step < self.config.learning_starts:
            return self.rng.uniform(-1.0, 1.0, size=(len(obs), self.action_dim)).astype(np.float32)
        actions = self.actor(self._flat(obs)).cpu().numpy()
        noise = self.rng.normal(0.0, self.config.exploration_noise, size=actions.shape)
        return np.clip(actions + noise, -1.0, 1.0).astype(np.float32)

    @torch.inference_mode()
    def predict(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """Env-ready actions: the actor's (with exploration noise unless ``deterministic``)."""
        obs = np.asarray(obs)
        actions = self.actor(self._flat(obs)).cpu().numpy()
        if not deterministic:
            actions = np.clip(actions + self.rng.normal(0.0, self.config.exploration_noise, size=actions.shape), -1.0, 1.0)
        return self.to_env(actions)

    # ---- state
    def _optimizers(self) -> dict[str, Optimizer]:
        return {"actor_optimizer": self.actor_optimizer, "critic_optimizer": self.critic_optimizer}

    def state_tensors(self) -> dict[str, Any]:
        tensors: dict[str, Any] = {}
        for name, module in (("actor", self.actor), ("actor_target", self.actor_target), ("critic", self.critic), ("critic_target", self.critic_target)):
            tensors.update({f"{name}/{k}": v for k, v in module.state_dict().items()})
        for name, optimizer in self._optimizers().items():
            tensors.update(optimizer_tensors(name, optimizer)[0])
        tensors["rng/torch"] = self.generator.get_state()
        if self.config.save_buffer and self.buffer is not None:
            tensors.update({f"buffer/{k}": v for k, v in self.buffer.state_arrays().items()})
        return tensors

    def state_json(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "algo": "td3",
            "config": asdict(self.config),
            "counters": {"global_step": self.global_step, "num_updates": self.num_updates, "num_episodes": self.num_episodes},
            "optimizer_param_groups": {name: optimizer_tensors(name, opt)[1] for name, opt in self._optimizers().items()},
            "rng": dict(self.rng.bit_generator.state),
        }
        if self.config.save_buffer and self.buffer is not None:
            state["buffer"] = {"capacity": self.buffer.capacity, "num_rows": self.buffer.num_rows, "rng": self.buffer.rng_state()}
        return state

    def load_state(self, tensors: dict[str, Any], state: dict[str, Any]) -> None:
        def part(prefix: str) -> dict[str, Any]:
            return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + "/")}

        for name, module in (("actor", self.actor), ("actor_target", self.actor_target), ("critic", self.critic), ("critic_target", self.critic_target)):
            module.load_state_dict(part(name))
        groups = state.get("optimizer_param_groups", {})
        for name, optimizer in self._optimizers().items():
            load_optimizer(name, optimizer, tensors, groups.get(name, []))
        if "rng/torch" in tensors:
            self.generator.set_state(tensors["rng/torch"].to(torch.uint8))
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
        return ReplayBuffer(capacity, num_rows, (self.obs_dim,), (self.action_dim,), seed=int(self.rng.integers(2**63)))


def make_td3_agent(observation_space: spaces.Space[Any], action_space: spaces.Space[Any], config: TD3Config | None = None, device: str = "cpu", seed: int | None = None) -> TD3Agent:
    """The registered agent factory (arguments are picked by name by the registry)."""
    return TD3Agent(observation_space, action_space, config or TD3Config(), device=device, seed=seed)


# --------------------------------------------------------------------------- losses


@torch.no_grad()
def td3_targets(agent: TD3Agent, batch: ReplaySample, config: TD3Config) -> torch.Tensor:
    """``y = r + discount * (1 - terminated) * min_k Q'_k(s', clip(pi'(s') + clip(noise, -c, c), -1, 1))``.

    Target policy smoothing: clipped Gaussian noise on the target actor's action regularizes the
    critic around it (with the twin critics' minimum and the delayed actor, TD3's three tricks).
    """
    next_actions = agent.actor_target(batch.next_obs)
    noise = torch.randn(next_actions.shape, generator=agent.generator, device=next_actions.device)
    noise = (noise * config.target_policy_noise).clamp_(-config.target_noise_clip, config.target_noise_clip)
    next_actions = (next_actions + noise).clamp_(-1.0, 1.0)
    next_q = agent.critic_target(torch.cat([batch.next_obs, next_actions], -1)).amin(0).squeeze(-1)
    return batch.rewards + batch.discounts * (1.0 - batch.terminated) * next_q


def td3_critic_loss(batch: ReplaySample, agent: TD3Agent, config: TD3Config) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``sum_k MSE(Q_k(s, a), y)`` with ``y`` from :func:`td3_targets` (SB3's critic loss)."""
    targets = td3_targets(agent, batch, config)
    q_values = agent.critic(torch.cat([batch.obs, batch.actions], -1)).squeeze(-1)  # (2, batch)
    loss = (q_values - targets).square().mean(-1).sum()
    return loss, {"loss/critic": loss.detach(), "loss/q_values": q_values.detach().mean()}


def td3_actor_loss(obs: torch.Tensor, agent: TD3Agent) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``-E[Q_1(s, pi(s))]`` (first critic only, as in the paper); critic weights are constants here."""
    actions = agent.actor(obs)
    weights, biases = agent.critic.weights, agent.critic.biases
    h = torch.cat([obs, actions], -1)
    # Only member 0 is needed: slice its weights instead of evaluating both critics.
    for index, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
        h = torch.addmm(bias[0, 0].detach(), h, weight[0].detach())
        if index < len(weights) - 1:
            h = agent.critic.activation(h)
    loss = -h.mean()
    return loss, {"loss/actor": loss.detach()}


# --------------------------------------------------------------------------- update


@torch.no_grad()
def td3_closed_form_critic_step(agent: TD3Agent, batch: ReplaySample, config: TD3Config) -> dict[str, torch.Tensor]:
    """The critic step with its gradient written out: ``dL/dQ_k = 2 (Q_k - y) / B`` for ``L = sum_k MSE(Q_k, y)``.

    Same targets and random draws as :func:`td3_critic_loss` (the networks' graph-free
    ``forward_cached`` passes into reused buffers; equal to autograd to float precision).
    """
    size, workspace = len(batch), agent.workspace
    next_actions, _ = agent.actor_target.forward_cached(batch.next_obs, tag="target")
    noise = torch.randn(next_actions.shape, generator=agent.generator, device=next_actions.device)
    noise = (noise * config.target_policy_noise).clamp_(-config.target_noise_clip, config.target_noise_clip)
    next_actions = (next_actions + noise).clamp_(-1.0, 1.0)
    critic_in = workspace.get("critic_in", (size, agent.obs_dim + agent.action_dim), batch.obs)
    torch.cat([batch.next_obs, next_actions], -1, out=critic_in)
    next_q = agent.critic_target.forward_cached(critic_in, tag="target")[0].amin(0).squeeze(-1)
    targets = batch.rewards + batch.discounts * (1.0 - batch.terminated) * next_q
    torch.cat([batch.obs, batch.actions], -1, out=critic_in)
    q_values, inputs = agent.critic.forward_cached(critic_in)
    errors = q_values.squeeze(-1) - targets  # (2, batch)
    agent.critic.backward(inputs, (errors * (2.0 / size)).unsqueeze(-1))
    agent.critic_optimizer.step()
    loss = errors.square().mean(-1).sum()
    return {"loss/critic": loss, "loss/q_values": q_values.mean()}


@torch.no_grad()
def td3_closed_form_actor_step(agent: TD3Agent, obs: torch.Tensor) -> dict[str, torch.Tensor]:
    """The actor step of :func:`td3_actor_loss` with its gradient written out.

    ``L = -mean Q_1(s, pi(s))``: ``dL/dQ_1 = -1/B``, carried back through the first critic (weights
    held constant) to the action input, then through the actor (:meth:`DeterministicActor.backward`).
    """
    size, obs_dim = obs.shape[0], agent.obs_dim
    actions, actor_inputs = agent.actor.forward_cached(obs, tag="pi")
    critic_in = agent.workspace.get("critic_in", (size, obs_dim + agent.action_dim), obs)
    torch.cat([obs, actions], -1, out=critic_in)
    q_first, inputs = agent.critic.forward_cached(critic_in, members=1)
    grad_in = agent.critic.backward(inputs, torch.full_like(q_first, -1.0 / size), weight_grads=False, input_grad=True)
    assert grad_in is not None
    agent.actor.backward(actor_inputs, actions, grad_in[0, :, obs_dim:], tag="pi")
    agent.actor_optimizer.step()
    return {"loss/actor": -q_first.mean()}


def td3_autograd_critic_step(
    agent: TD3Agent,
    batch: ReplaySample,
    config: TD3Config,
    loss_fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = None,
) -> dict[str, torch.Tensor]:
    """The critic step with autograd on :func:`td3_critic_loss` (the closed form's reference) or ``loss_fn``."""
    critic_loss, metrics = (loss_fn or td3_critic_loss)(batch, agent, config)
    agent.critic_optimizer.zero_grad()
    critic_loss.backward()
    agent.critic_optimizer.step()
    return metrics


def td3_autograd_actor_step(
    agent: TD3Agent,
    obs: torch.Tensor,
    loss_fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = None,
) -> dict[str, torch.Tensor]:
    """The actor step with autograd on :func:`td3_actor_loss` (the closed form's reference) or ``loss_fn``."""
    actor_loss, metrics = (loss_fn or td3_actor_loss)(obs, agent)
    agent.actor_optimizer.zero_grad()
    actor_loss.backward()
    agent.actor_optimizer.step()
    return metrics


def td3_update(
    agent: TD3Agent,
    buffer: ReplayBuffer,
    config: TD3Config,
    critic_loss_fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = None,
    actor_loss_fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = None,
) -> dict[str, torch.Tensor]:
    """``gradient_steps`` critic steps; every ``policy_delay``-th one also steps the actor and both targets.

    With ``closed_form_gradients`` (and relu/tanh networks) the steps are
    :func:`td3_closed_form_critic_step` and :func:`td3_closed_form_actor_step`, else their autograd
    references :func:`td3_autograd_critic_step` and :func:`td3_autograd_actor_step`.
    """
    size = config.batch_size
    samples = buffer.sample(config.gradient_steps * size, config.n_steps, config.gamma).to_torch(agent.device)
    custom = critic_loss_fn is not None or actor_loss_fn is not None
    closed_form = not custom and config.closed_form_gradients and agent.actor.closed_form and agent.critic.closed_form
    critic_step = td3_closed_form_critic_step if closed_form else partial(td3_autograd_critic_step, loss_fn=critic_loss_fn)
    actor_step = td3_closed_form_actor_step if closed_form else partial(td3_autograd_actor_step, loss_fn=actor_loss_fn)
    metrics: dict[str, torch.Tensor] = {}
    for index in range(config.gradient_steps):
        batch = samples.slice(index * size, (index + 1) * size)
        metrics.update(critic_step(agent, batch, config))
        agent.num_updates += 1
        if agent.num_updates % config.policy_delay == 0:
            metrics.update(actor_step(agent, batch.obs))
            polyak_update(agent.critic_target.parameters(), agent.critic.parameters(), config.tau)
            polyak_update(agent.actor_target.parameters(), agent.actor.parameters(), config.tau)
    return metrics


# --------------------------------------------------------------------------- training loop


@replay_on_policy_sets
def train_td3(
    env_factory: Callable[[int | None], Any],
    agent: TD3Agent,
    config: TD3Config,
    artifacts: dict[str, Any],
    save_callback: Callable[..., None] | None = None,
    context: TrainContext | None = None,
    *,
    source: Any = None,
    evaluator: Callable[..., Any] | None = None,
) -> TD3Agent:
    """Train ``agent`` with TD3 until ``config.total_steps`` (continues from ``agent.global_step``).

    On a multi-agent env ``agent`` is a one-policy PolicySet: one actor and critics shared by every
    agent, each agent's transitions separate rows of one replay buffer (``source`` and ``evaluator``
    then come from the multi-agent source).

    The loop (collect one step of every env copy, learn with :func:`td3_update` every
    ``train_frequency_steps`` after ``learning_starts``, log, evaluate, checkpoint) is shared with
    SAC: :func:`daedalus.algos.common.train_replay`. Writes
    ``artifacts["evaluations"]`` and ``artifacts["time_split"]``.
    """
    update = partial(
        td3_update,
        critic_loss_fn=custom_loss(context, config.critic_loss, td3_critic_loss) if config.critic_loss else None,
        actor_loss_fn=custom_loss(context, config.actor_loss, td3_actor_loss) if config.actor_loss else None,
    )
    train_replay(
        env_factory, agent, config, artifacts, save_callback, context, "td3", update, action_to_env=agent.to_env,
        source=source, evaluator=evaluator,
    )
    return agent


# --------------------------------------------------------------------------- registration

AGENT_SPEC = AgentSpec(
    agent_id="td3",
    agent_factory=make_td3_agent,
    training_wrapper=train_td3,
    description="Twin Delayed DDPG: twin Q, target policy smoothing, delayed actor",
    config_class=TD3Config,
    action_spaces=("Box",),
    flat_observations=True,
)
