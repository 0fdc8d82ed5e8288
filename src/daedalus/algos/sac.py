"""Soft Actor-Critic (Haarnoja et al. 2018, with the automatic entropy tuning of the 2018 follow-up).

One file, top to bottom in the order the algorithm runs (CleanRL's ``sac_continuous_action.py``
layout): config → agent (squashed Gaussian actor, twin Q critics and their targets, entropy
temperature, optimizers, state) → losses → update → training loop → registration. Built from
shared, unit-tested pieces: the replay buffer (:mod:`daedalus.buffers.replay`), the collector
(:mod:`daedalus.rollout.collector`, the only place envs are stepped) and the networks of
:mod:`daedalus.nn.offpolicy` (twin critics as one batched ensemble, Polyak averaging).

Semantics follow Stable-Baselines3's SAC so that rl-zoo3 hyperparameters carry over: actions
live in ``[-1, 1]`` (rescaled to the Box bounds for the env), uniformly random actions for the
first ``learning_starts`` steps, one learning rate for actor, critics and temperature, the
temperature loss on ``log alpha``, update order temperature → critics → actor → targets.

Each loss is a plain function of a batch (:func:`sac_critic_loss`, :func:`sac_actor_loss`,
:func:`sac_alpha_loss`): wrap one to add a term.
"""

from __future__ import annotations

import copy
import math
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
from daedalus.nn.offpolicy import EnsembleMLP, SquashedGaussianActor, Workspace, polyak_update
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

__all__ = ["AGENT_SPEC", "SACAgent", "SACConfig", "make_sac_agent", "sac_actor_loss", "sac_autograd_step", "sac_closed_form_step", "sac_alpha_loss", "sac_critic_loss", "sac_update", "train_sac"]


# --------------------------------------------------------------------------- config


@dataclass
class SACConfig:
    """SAC hyperparameters (SB3 / rl-zoo3 vocabulary; defaults are the Pendulum-v1 zoo values)."""

    total_steps: int = param(20_000, "Environment steps to train for, summed over all envs and agents.", AT_LEAST_ONE)
    learning_rate: float = param(1e-3, "Adam learning rate of the actor, the critics and the temperature.", POSITIVE)
    buffer_size: int = param(1_000_000, "Replay buffer capacity in transitions.", AT_LEAST_ONE)
    learning_starts: int = param(100, "Environment steps of uniformly random actions before learning starts.", NONNEGATIVE)
    batch_size: int = param(256, "Transitions per gradient step.", AT_LEAST_ONE)
    gamma: float = param(0.99, "Discount factor.", UNIT)
    n_steps: int = param(1, "n-step returns for the critic target (1 = one-step TD).", AT_LEAST_ONE)
    tau: float = param(0.005, "Polyak coefficient of the target critics.", PROBABILITY)
    target_update_interval: int = param(1, "Update the target critics every this many gradient steps.", AT_LEAST_ONE)
    train_frequency_steps: int = param(1, "Run an update (gradient_steps gradient steps) every this many environment steps.", AT_LEAST_ONE)
    gradient_steps: int = param(1, "Gradient steps per update.", AT_LEAST_ONE)
    autotune_entropy: bool = param(True, "Learn the temperature alpha so that the policy entropy tracks target_entropy (SB3's ent_coef: auto).")
    initial_alpha: float = param(1.0, "Temperature at the start (the fixed temperature when autotune_entropy is off).", POSITIVE)
    target_entropy: float | None = param(None, "Entropy target of the temperature loss; null: -(action dimensions).")
    hidden_sizes: list[int] = param([256, 256], "Hidden layer sizes of the actor and of each critic.", AT_LEAST_ONE)
    activation: str = param("relu", f"Hidden activation: one of {sorted(ACTIVATIONS)}.", choices=sorted(ACTIVATIONS))
    critic_loss: str | None = param(None, "A custom critic loss by reference (pkg.mod:fn or file.py:fn), called like sac_critic_loss(batch, agent, alpha): (loss, metrics). The update then runs through autograd.", code=True)
    actor_loss: str | None = param(None, "A custom actor loss by reference, called like sac_actor_loss(obs, agent, actions, log_probs, alpha): (loss, metrics). The update then runs through autograd.", code=True)
    closed_form_gradients: bool = param(True, "Compute the gradients of the three losses in closed form instead of with autograd (same numbers to float precision, ~2x faster gradient steps on a CPU; relu and tanh networks, autograd otherwise).")
    save_buffer: bool = param(False, "Store the replay buffer in checkpoints (exact resume of the data too; large).")
    eval_every_steps: int = param(5_000, "Evaluate on separate env copies every this many steps; 0 disables.", NONNEGATIVE)
    eval_episodes: int = param(10, "Episodes per periodic evaluation.", AT_LEAST_ONE)
    eval_deterministic: bool = param(True, "Evaluate with the policy's mean action (tanh(mu)) instead of sampling.")
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


class SACAgent(TensorAgent):
    """Actor, twin critics + targets, temperature, their optimizers, RNGs, counters, optional buffer."""

    #: The networks that act while collecting (what Ray workers hold a copy of).
    acting_modules = ("actor",)

    def __init__(self, observation_space: spaces.Space[Any], action_space: spaces.Space[Any], config: SACConfig, device: str = "cpu", seed: int | None = None) -> None:
        super().__init__(name="sac")
        if not isinstance(action_space, spaces.Box):
            raise ProfileError(f"SAC needs a Box action space, got {action_space}. Use DQN for Discrete actions.")
        self.config, self.observation_space, self.action_space = config, observation_space, action_space
        self.device = torch.device(device)
        self.obs_dim = int(np.prod(observation_space.shape or ()))
        self.action_dim = int(np.prod(action_space.shape))
        self.action_low = action_space.low.reshape(-1).astype(np.float32)
        self.action_high = action_space.high.reshape(-1).astype(np.float32)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            if seed is not None:
                torch.manual_seed(seed)
            self.actor = SquashedGaussianActor(self.obs_dim, self.action_dim, config.hidden_sizes, config.activation).to(self.device)
            self.critic = EnsembleMLP(2, self.obs_dim + self.action_dim, config.hidden_sizes, 1, config.activation).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.nn.Parameter(torch.tensor(math.log(config.initial_alpha), device=self.device))
        self.target_entropy = float(config.target_entropy if config.target_entropy is not None else -self.action_dim)

        def adam(params: Any) -> Adam:
            return Adam(params, lr=config.learning_rate)

        self.actor_optimizer = adam(self.actor.parameters())
        self.critic_optimizer = adam(self.critic.parameters())
        self.alpha_optimizer = adam([self.log_alpha])
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed if seed is not None else int(np.random.SeedSequence().generate_state(1)[0]))
        self.rng = np.random.default_rng(seed)  # warm-up actions and the replay buffer's seed
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
        """Training actions in ``[-1, 1]``: uniform before ``learning_starts``, then sampled from the policy."""
        if self.global_step < self.config.learning_starts:
            return self.rng.uniform(-1.0, 1.0, size=(len(obs), self.action_dim)).astype(np.float32)
        return self.actor(self._flat(obs), self.generator)[0].cpu().numpy()

    @torch.inference_mode()
    def predict(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """Env-ready actions: ``tanh(mean)`` when ``deterministic``, else a policy sample."""
        flat = self._flat(np.asarray(obs))
        actions = self.actor.mode(flat) if deterministic else self.actor(flat, self.generator)[0]
        return self.to_env(actions.cpu().numpy())

    # ---- state
    def _optimizers(self) -> dict[str, Optimizer]:
        return {"actor_optimizer": self.actor_optimizer, "critic_optimizer": self.critic_optimizer, "alpha_optimizer": self.alpha_optimizer}

    def state_tensors(self) -> dict[str, Any]:
        tensors: dict[str, Any] = {}
        for name, module in (("actor", self.actor), ("critic", self.critic), ("critic_target", self.critic_target)):
            tensors.update({f"{name}/{k}": v for k, v in module.state_dict().items()})
        tensors["log_alpha"] = self.log_alpha.detach()
        for name, optimizer in self._optimizers().items():
            tensors.update(optimizer_tensors(name, optimizer)[0])
        tensors["rng/torch"] = self.generator.get_state()
        if self.config.save_buffer and self.buffer is not None:
            tensors.update({f"buffer/{k}": v for k, v in self.buffer.state_arrays().items()})
        return tensors

    def state_json(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "algo": "sac",
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

        self.actor.load_state_dict(part("actor"))
        self.critic.load_state_dict(part("critic"))
        self.critic_target.load_state_dict(part("critic_target"))
        with torch.no_grad():
            self.log_alpha.copy_(tensors["log_alpha"])
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


def make_sac_agent(observation_space: spaces.Space[Any], action_space: spaces.Space[Any], config: SACConfig | None = None, device: str = "cpu", seed: int | None = None) -> SACAgent:
    """The registered agent factory (arguments are picked by name by the registry)."""
    return SACAgent(observation_space, action_space, config or SACConfig(), device=device, seed=seed)


# --------------------------------------------------------------------------- losses


def sac_alpha_loss(log_alpha: torch.Tensor, log_probs: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """``-log_alpha * (log pi + target_entropy)``, averaged (SB3's form, on ``log alpha``).

    Its gradient ``-(E[log pi] + target)`` is negative when the entropy ``-E[log pi]`` is *below*
    the target, so gradient descent raises alpha (more exploration), and lowers it when above.
    """
    return -(log_alpha * (log_probs.detach() + target_entropy)).mean()


def sac_critic_loss(batch: ReplaySample, agent: SACAgent, alpha: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``0.5 * sum_k MSE(Q_k(s, a), y)``, ``y = r + discount * (1 - terminated) * (min_k Q'_k(s', a') - alpha log pi(a'|s'))``."""
    with torch.no_grad():
        next_actions, next_log_probs = agent.actor(batch.next_obs, agent.generator)
        next_q = agent.critic_target(torch.cat([batch.next_obs, next_actions], -1)).amin(0).squeeze(-1)
        targets = batch.rewards + batch.discounts * (1.0 - batch.terminated) * (next_q - alpha * next_log_probs)
    q_values = agent.critic(torch.cat([batch.obs, batch.actions], -1)).squeeze(-1)  # (2, batch)
    loss = 0.5 * (q_values - targets).square().mean(-1).sum()
    return loss, {"loss/critic": loss.detach(), "loss/q_values": q_values.detach().mean()}


def sac_actor_loss(obs: torch.Tensor, agent: SACAgent, actions: torch.Tensor, log_probs: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``E[alpha log pi(a|s) - min_k Q_k(s, a)]`` for reparameterized ``a ~ pi(.|s)``.

    The critics' weights are used as constants (``detach_params``): the gradient flows into
    the actions only, and autograd does not compute critic weight gradients nobody uses.
    """
    q_values = agent.critic(torch.cat([obs, actions], -1), detach_params=True).amin(0).squeeze(-1)
    loss = (alpha * log_probs - q_values).mean()
    return loss, {"loss/actor": loss.detach(), "loss/entropy": -log_probs.detach().mean()}


# --------------------------------------------------------------------------- update


def sac_closed_form_step(agent: SACAgent, batch: ReplaySample, config: SACConfig) -> dict[str, torch.Tensor]:
    """One SAC gradient step with the gradients of the three losses above written out by hand.

    The same step as the autograd path of :func:`sac_update` (same order, same random draws, equal
    to float precision; ``tests/unit/test_offpolicy_closed_form.py``), arranged for a CPU:

    - the actor runs once on ``[obs; next_obs]`` (both use the pre-update actor);
    - critic loss ``0.5 sum_k mean (Q_k - y)^2``: ``dL/dQ_k = (Q_k - y) / B``;
    - actor loss ``mean(alpha log pi - min_k Q_k(s, a))``: ``dL/dQ = -1/B`` on the smaller critic
      of each row, carried back to the action input with the critic weights held constant, then
      through the squashed Gaussian (:meth:`SquashedGaussianActor.backward`) with
      ``dL/d log pi = alpha / B``;
    - temperature loss ``-mean(log_alpha (log pi + target))``: ``dL/d log_alpha = -mean(log pi + target)``.
    """
    size, obs_dim = len(batch), agent.obs_dim
    actor, critic = agent.actor, agent.critic
    workspace = agent.workspace
    both = torch.cat([batch.obs, batch.next_obs], 0, out=workspace.get("obs2", (2 * size, obs_dim), batch.obs))
    noise = workspace.get("noise", (2 * size, agent.action_dim), batch.obs)
    torch.randn((size, agent.action_dim), generator=agent.generator, out=noise[:size])  # same draw order as autograd
    torch.randn((size, agent.action_dim), generator=agent.generator, out=noise[size:])
    all_actions, all_log_probs, actor_cache = actor.forward_cached(both, noise)
    actions, log_probs = all_actions[:size], all_log_probs[:size]
    next_actions, next_log_probs = all_actions[size:], all_log_probs[size:]
    metrics: dict[str, torch.Tensor] = {}

    log_alpha = agent.log_alpha.detach().clone()
    alpha = log_alpha.exp()  # this step's losses use alpha from before its temperature update
    metrics["charts/alpha"] = alpha
    if config.autotune_entropy:
        shifted = log_probs + agent.target_entropy
        agent.log_alpha.grad = -shifted.mean().reshape(agent.log_alpha.shape)
        agent.alpha_optimizer.step()
        metrics["loss/alpha"] = -(log_alpha * shifted).mean()

    # critics
    critic_in = workspace.get("critic_in", (size, obs_dim + agent.action_dim), batch.obs)
    torch.cat([batch.next_obs, next_actions], -1, out=critic_in)
    next_q = agent.critic_target.forward_cached(critic_in, tag="target")[0].amin(0).squeeze(-1)
    targets = batch.rewards + batch.discounts * (1.0 - batch.terminated) * (next_q - alpha * next_log_probs)
    torch.cat([batch.obs, batch.actions], -1, out=critic_in)
    q_values, inputs = critic.forward_cached(critic_in)
    errors = q_values.squeeze(-1) - targets  # (2, batch)
    critic.backward(inputs, (errors * (1.0 / size)).unsqueeze(-1))
    agent.critic_optimizer.step()
    critic_loss = 0.5 * errors.square().mean(-1).sum()
    metrics.update({"loss/critic": critic_loss, "loss/q_values": q_values.mean()})

    # actor (critics after their update, as constants)
    torch.cat([batch.obs, actions], -1, out=critic_in)
    q_pi, inputs = critic.forward_cached(critic_in)
    q_min, smaller = q_pi.min(0)  # (batch, 1)
    grad_q = torch.zeros_like(q_pi).scatter_(0, smaller.unsqueeze(0), -1.0 / size)
    grad_in = critic.backward(inputs, grad_q, weight_grads=False, input_grad=True)
    assert grad_in is not None
    actor.backward(actor_cache, grad_in[:, :, obs_dim:].sum(0), alpha / size)
    agent.actor_optimizer.step()
    metrics.update({"loss/actor": (alpha * log_probs - q_min.squeeze(-1)).mean(), "loss/entropy": -log_probs.mean()})
    return metrics


def sac_autograd_step(
    agent: SACAgent,
    batch: ReplaySample,
    config: SACConfig,
    critic_loss_fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = None,
    actor_loss_fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = None,
) -> dict[str, torch.Tensor]:
    """One SAC gradient step with autograd on :func:`sac_alpha_loss`, :func:`sac_critic_loss` and
    :func:`sac_actor_loss`: the reference :func:`sac_closed_form_step` is tested against, and the
    path for activations the closed form does not cover."""
    metrics: dict[str, torch.Tensor] = {}
    actions, log_probs = agent.actor(batch.obs, agent.generator)

    # This step's losses use alpha from *before* its temperature update (as SB3 does).
    alpha = agent.log_alpha.detach().exp()
    metrics["charts/alpha"] = alpha
    if config.autotune_entropy:
        alpha_loss = sac_alpha_loss(agent.log_alpha, log_probs, agent.target_entropy)
        agent.alpha_optimizer.zero_grad()
        alpha_loss.backward()
        agent.alpha_optimizer.step()
        metrics["loss/alpha"] = alpha_loss.detach()

    critic_loss, critic_metrics = (critic_loss_fn or sac_critic_loss)(batch, agent, alpha)
    agent.critic_optimizer.zero_grad()
    critic_loss.backward()
    agent.critic_optimizer.step()

    actor_loss, actor_metrics = (actor_loss_fn or sac_actor_loss)(batch.obs, agent, actions, log_probs, alpha)
    agent.actor_optimizer.zero_grad()
    actor_loss.backward()
    agent.actor_optimizer.step()
    return {**metrics, **critic_metrics, **actor_metrics}


def sac_update(
    agent: SACAgent,
    buffer: ReplayBuffer,
    config: SACConfig,
    critic_loss_fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = None,
    actor_loss_fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = None,
) -> dict[str, torch.Tensor]:
    """``gradient_steps`` SAC gradient steps (temperature → critics → actor → targets); metrics of the last one.

    Each step is :func:`sac_closed_form_step` with ``closed_form_gradients`` and relu/tanh networks,
    else :func:`sac_autograd_step`; the target critics follow every ``target_update_interval`` steps.
    """
    size = config.batch_size
    samples = buffer.sample(config.gradient_steps * size, config.n_steps, config.gamma).to_torch(agent.device)
    custom = critic_loss_fn is not None or actor_loss_fn is not None
    closed_form = not custom and config.closed_form_gradients and agent.actor.closed_form and agent.critic.closed_form
    step = sac_closed_form_step if closed_form else partial(sac_autograd_step, critic_loss_fn=critic_loss_fn, actor_loss_fn=actor_loss_fn)
    metrics: dict[str, torch.Tensor] = {}
    for index in range(config.gradient_steps):
        metrics = step(agent, samples.slice(index * size, (index + 1) * size), config)
        agent.num_updates += 1
        if agent.num_updates % config.target_update_interval == 0:
            polyak_update(agent.critic_target.parameters(), agent.critic.parameters(), config.tau)
    return metrics


# --------------------------------------------------------------------------- training loop


@replay_on_policy_sets
def train_sac(
    env_factory: Callable[[int | None], Any],
    agent: SACAgent,
    config: SACConfig,
    artifacts: dict[str, Any],
    save_callback: Callable[..., None] | None = None,
    context: TrainContext | None = None,
    *,
    source: Any = None,
    evaluator: Callable[..., Any] | None = None,
) -> SACAgent:
    """Train ``agent`` with SAC until ``config.total_steps`` (continues from ``agent.global_step``).

    On a multi-agent env ``agent`` is a one-policy PolicySet: one actor and critics shared by every
    agent, each agent's transitions separate rows of one replay buffer (``source`` and ``evaluator``
    then come from the multi-agent source).

    The loop (collect one step of every env copy, learn with :func:`sac_update` every
    ``train_frequency_steps`` after ``learning_starts``, log, evaluate, checkpoint) is shared with
    TD3: :func:`daedalus.algos.common.train_replay`. Writes
    ``artifacts["evaluations"]`` and ``artifacts["time_split"]``.
    """
    update = partial(
        sac_update,
        critic_loss_fn=custom_loss(context, config.critic_loss, sac_critic_loss) if config.critic_loss else None,
        actor_loss_fn=custom_loss(context, config.actor_loss, sac_actor_loss) if config.actor_loss else None,
    )
    train_replay(
        env_factory, agent, config, artifacts, save_callback, context, "sac", update, action_to_env=agent.to_env,
        source=source, evaluator=evaluator,
    )
    return agent


# --------------------------------------------------------------------------- registration

AGENT_SPEC = AgentSpec(
    agent_id="sac",
    agent_factory=make_sac_agent,
    training_wrapper=train_sac,
    description="Soft Actor-Critic: twin Q, automatic entropy tuning, squashed Gaussian policy",
    config_class=SACConfig,
    action_spaces=("Box",),
    flat_observations=True,
)
