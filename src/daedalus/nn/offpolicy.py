"""Networks for the off-policy algorithms (DQN, SAC, TD3): MLPs, twin critics, actors, target updates.

Small MLPs on a CPU spend more time in per-module and per-op dispatch than in arithmetic, so:

- :class:`EnsembleMLP` holds K same-shaped MLPs (SAC's and TD3's twin critics) as stacked weights
  ``(K, in, out)``: one batched matmul per layer for all members instead of K module calls;
- its ``forward(..., detach_params=True)`` uses the weights as constants, so the actor's loss
  backpropagates into the actions only and autograd never computes critic weight gradients
  that would be thrown away;
- :func:`polyak_update` is one fused ``_foreach_lerp_`` over all tensors;
- every network also has a *closed-form* pass (``forward_cached`` + ``backward``) for ReLU/tanh
  hidden layers: no autograd graph, activations computed in place into buffers that are reused
  every step (a :class:`Workspace`), gradients written straight into ``param.grad``. SAC and TD3
  use it by default (``closed_form_gradients``); it matches autograd to float precision
  (``tests/unit/test_offpolicy_closed_form.py``).

Why the closed form is faster at the rl-zoo3 sizes (256x256 and 400x300 at batch 256) on a CPU,
though the matmuls are the same: autograd allocates a fresh activation or gradient per op, and fresh
memory is page-faulted and cache-cold (``benchmarks/offpolicy_update_step.py``: ~200-260 page faults
per autograd SAC step, none in the closed form); the in-place ReLU backward (``threshold_backward``
into the gradient, 16 us on a 2x256x256 tensor) replaces a boolean-mask multiply (170 us).

Initialization follows ``torch.nn.Linear``'s default (what SB3 and CleanRL use for these
algorithms): weights and biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from daedalus.nn.networks import ACTIVATIONS

__all__ = [
    "CLOSED_FORM_ACTIVATIONS",
    "DeterministicActor",
    "EnsembleMLP",
    "SquashedGaussianActor",
    "Workspace",
    "hard_update",
    "linear_backward",
    "linear_forward_cached",
    "mlp_network",
    "polyak_update",
]

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3's clamp of the SAC actor's log standard deviation
SQUASH_EPS = 1e-6  # SB3's and CleanRL's epsilon in the tanh correction log(1 - tanh(u)^2 + eps)
CLOSED_FORM_ACTIVATIONS = ("relu", "tanh")  # hidden activations whose derivative comes from the output


def mlp_network(input_dim: int, hidden_sizes: Sequence[int], output_dim: int, activation: str = "relu") -> nn.Sequential:
    """``Linear → activation`` per hidden size, then a linear output layer (default torch init)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [nn.Linear(input_dim, size), ACTIVATIONS[activation]()]
        input_dim = size
    layers.append(nn.Linear(input_dim, output_dim))
    return nn.Sequential(*layers)


class Workspace:
    """Tensors reused from one gradient step to the next, one per (name, shape, dtype, device).

    A buffer's content is valid until the same name and shape are requested again, so a name belongs to
    one role in one step (``"critic/h1"``); callers must not keep a buffer across steps. Keying on the
    shape too means a role used at two sizes (TD3's critic pass over both members, then over the first
    only) keeps two buffers instead of reallocating, and page-faulting, one at every switch.
    """

    def __init__(self) -> None:
        self._tensors: dict[tuple[Any, ...], torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialized ``shape`` tensor with ``like``'s dtype and device, the same one every call."""
        key = (name, tuple(shape), like.dtype, like.device)
        tensor = self._tensors.get(key)
        if tensor is None:
            tensor = self._tensors[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return tensor


def _workspace(module: nn.Module) -> Workspace:
    """The module's workspace (not a parameter or buffer: never saved, never copied by ``deepcopy``)."""
    workspace = module.__dict__.get("_workspace")
    if workspace is None:
        workspace = module.__dict__["_workspace"] = Workspace()
    return workspace


def activate_(h: torch.Tensor, activation: str) -> torch.Tensor:
    """``relu`` or ``tanh`` in place."""
    return torch.relu_(h) if activation == "relu" else torch.tanh_(h)


def activation_backward_(grad: torch.Tensor, output: torch.Tensor, activation: str) -> torch.Tensor:
    """``grad *= act'(.)`` in place, from the activation's *output* (relu: ``output > 0``, tanh: ``1 - output^2``)."""
    if activation == "relu":
        return torch.ops.aten.threshold_backward.grad_input(grad, output, 0.0, grad_input=grad)
    return torch.ops.aten.tanh_backward.grad_input(grad, output, grad_input=grad)


def _grad(parameter: torch.Tensor) -> torch.Tensor:
    if parameter.grad is None:
        parameter.grad = torch.zeros_like(parameter)
    return parameter.grad


@torch.no_grad()
def linear_forward_cached(
    layers: Sequence[nn.Linear], x: torch.Tensor, activation: str, workspace: Workspace, tag: str, activate_last: bool = False
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A stack of ``nn.Linear`` (activation between layers, and after the last one if ``activate_last``).

    Returns the output and the layer inputs that :func:`linear_backward` needs; everything lives in
    ``workspace`` buffers named after ``tag``.
    """
    inputs, h, last = [x], x, len(layers) - 1
    for index, layer in enumerate(layers):
        out = workspace.get(f"{tag}/h{index}", (x.shape[0], layer.out_features), x)
        torch.addmm(layer.bias.detach(), h, layer.weight.detach().t(), out=out)
        if index < last or activate_last:
            activate_(out, activation)
        if index < last:
            inputs.append(out)
        h = out
    return h, inputs


@torch.no_grad()
def linear_backward(
    layers: Sequence[nn.Linear], inputs: Sequence[torch.Tensor], grad_output: torch.Tensor, activation: str, workspace: Workspace, tag: str
) -> None:
    """Write the stack's parameter gradients (overwriting ``.grad``) from ``d loss / d output``.

    ``inputs`` are :func:`linear_forward_cached`'s (a leading row slice of them is fine);
    ``grad_output`` is taken *after* any activation of the last layer has been differentiated.
    """
    grad = grad_output
    for index in range(len(layers) - 1, -1, -1):
        layer = layers[index]
        torch.mm(grad.t(), inputs[index], out=_grad(layer.weight))
        torch.sum(grad, 0, out=_grad(layer.bias))
        if index == 0:
            return
        below = workspace.get(f"{tag}/g{index}", (grad.shape[0], layer.in_features), grad)
        torch.mm(grad, layer.weight.detach(), out=below)
        grad = activation_backward_(below, inputs[index], activation)


def _linear_layers(module: nn.Module) -> list[nn.Linear]:
    return [layer for layer in module.modules() if isinstance(layer, nn.Linear)]


class EnsembleMLP(nn.Module):
    """``num_members`` independent MLPs evaluated together with batched matmuls.

    ``forward(x)`` takes ``(batch, input_dim)`` (the same input for every member) and returns
    ``(num_members, batch, output_dim)``. Member ``k`` is initialized like an ``nn.Linear`` stack.
    """

    def __init__(self, num_members: int, input_dim: int, hidden_sizes: Sequence[int], output_dim: int, activation: str = "relu") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"Unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
        self.num_members = num_members
        self.activation_name = activation
        self.activation = ACTIVATIONS[activation]()
        sizes = [input_dim, *hidden_sizes, output_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter(torch.empty(num_members, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(num_members, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        """All members' outputs ``(num_members, batch, output_dim)``; ``detach_params`` treats weights as constants."""
        last = len(self.weights) - 1
        h = x
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            if detach_params:
                weight, bias = weight.detach(), bias.detach()
            # (B, in) @ (K, in, out) broadcasts to (K, B, out): one kernel for every member.
            h = torch.baddbmm(bias, h, weight) if h.dim() == 3 else torch.matmul(h, weight) + bias
            if index < last:
                h = self.activation(h)
        return h

    @property
    def closed_form(self) -> bool:
        """Whether :meth:`forward_cached` / :meth:`backward` support this network's activation."""
        return self.activation_name in CLOSED_FORM_ACTIVATIONS

    @torch.no_grad()
    def forward_cached(self, x: torch.Tensor, members: int | None = None, tag: str = "forward") -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Graph-free forward of the first ``members`` members (default all) into reused buffers.

        Returns ``(output (members, batch, output_dim), layer inputs)``; pass both to :meth:`backward`.
        The buffers are named after ``tag``: two passes whose results are alive at once need two tags.
        """
        workspace = _workspace(self)
        k = self.num_members if members is None else members
        rows = x.shape[-2]
        h = x.unsqueeze(0).expand(k, rows, x.shape[-1]) if x.dim() == 2 else x
        inputs, last = [h], len(self.weights) - 1
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            out = workspace.get(f"{tag}/h{index}", (k, rows, weight.shape[-1]), x)
            torch.baddbmm(bias.detach()[:k], h, weight.detach()[:k], out=out)
            if index < last:
                activate_(out, self.activation_name)
                inputs.append(out)
            h = out
        return h, inputs

    @torch.no_grad()
    def backward(
        self, inputs: Sequence[torch.Tensor], grad_output: torch.Tensor, weight_grads: bool = True, input_grad: bool = False, tag: str = "backward"
    ) -> torch.Tensor | None:
        """From ``d loss / d output`` ``(k, batch, output_dim)``: parameter gradients and/or the input gradient.

        ``weight_grads`` overwrites every parameter's ``.grad`` (needs all members); ``input_grad``
        returns ``d loss / d x`` per member ``(k, batch, input_dim)`` (sum over members for a shared input).
        """
        workspace = _workspace(self)
        grad = grad_output
        for index in range(len(self.weights) - 1, -1, -1):
            weight = self.weights[index]
            if weight_grads:
                torch.bmm(inputs[index].transpose(1, 2), grad, out=_grad(weight))
                torch.sum(grad, 1, keepdim=True, out=_grad(self.biases[index]))
            if index == 0 and not input_grad:
                return None
            below = workspace.get(f"{tag}/g{index}", (grad.shape[0], grad.shape[1], weight.shape[1]), grad)
            torch.bmm(grad, weight.detach()[: grad.shape[0]].transpose(1, 2), out=below)
            if index > 0:
                activation_backward_(below, inputs[index], self.activation_name)
            grad = below
        return grad


def _squashed_sample(mean: torch.Tensor, log_std: torch.Tensor, std: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``a = tanh(mean + noise * std)`` and ``log N(u) - sum log(1 - a^2 + SQUASH_EPS)`` (autograd-capable)."""
    log_prob = (-0.5 * noise.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    actions = torch.tanh(mean + noise * std)
    return actions, log_prob - torch.log(1.0 - actions.square() + SQUASH_EPS).sum(-1)


class SquashedGaussianActor(nn.Module):
    """SAC's policy: a Gaussian over pre-squash actions, ``tanh`` into ``[-1, 1]`` (Haarnoja et al. 2018).

    ``forward(obs)`` returns ``(actions, log_probs)`` with the change-of-variables correction
    ``log pi(a) = log N(u) - sum log(1 - tanh(u)^2 + 1e-6)``, Stable-Baselines3's and CleanRL's form (the
    one rl-zoo3's values were tuned with). It differs from the exact correction only where actions
    saturate (``|u|`` above ~7 in float32): there the exact term keeps growing like ``2|u|`` while this
    one stops at ``-log(1e-6)`` and its gradient vanishes. Actions are in ``[-1, 1]``; the algorithm rescales them to the
    Box bounds.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], activation: str = "relu") -> None:
        super().__init__()
        self.trunk = mlp_network(obs_dim, hidden_sizes[:-1], hidden_sizes[-1], activation) if hidden_sizes else nn.Identity()
        self.trunk_activation = ACTIVATIONS[activation]() if hidden_sizes else nn.Identity()
        last = hidden_sizes[-1] if hidden_sizes else obs_dim
        self.mean = nn.Linear(last, action_dim)
        self.log_std = nn.Linear(last, action_dim)
        self.activation_name = activation

    @property
    def closed_form(self) -> bool:
        """Whether :meth:`forward_cached` / :meth:`backward` support this network's activation."""
        return self.activation_name in CLOSED_FORM_ACTIVATIONS

    def distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, log_std)`` of the pre-squash Gaussian."""
        hidden = self.trunk_activation(self.trunk(obs))
        return self.mean(hidden), self.log_std(hidden).clamp(LOG_STD_MIN, LOG_STD_MAX)

    def forward(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterized sample in ``[-1, 1]`` and its log-probability."""
        mean, log_std = self.distribution(obs)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        return _squashed_sample(mean, log_std, log_std.exp(), noise)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action ``tanh(mean)``."""
        return torch.tanh(self.distribution(obs)[0])

    @torch.no_grad()
    def forward_cached(self, obs: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[Any, ...]]:
        """Graph-free :meth:`forward` with the caller's standard-normal ``noise``: ``(actions, log_probs, cache)``.

        Pass ``cache`` to :meth:`backward`; it is valid until the next ``forward_cached`` call.
        """
        workspace = _workspace(self)
        layers = _linear_layers(self.trunk)
        hidden, inputs = linear_forward_cached(layers, obs, self.activation_name, workspace, "trunk", activate_last=True)
        mean = torch.addmm(self.mean.bias.detach(), hidden, self.mean.weight.detach().t())
        raw_log_std = torch.addmm(self.log_std.bias.detach(), hidden, self.log_std.weight.detach().t())
        log_std = raw_log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        std = log_std.exp()
        actions, log_prob = _squashed_sample(mean, log_std, std, noise)
        return actions, log_prob, (layers, inputs, hidden, raw_log_std, std, noise, actions)

    @torch.no_grad()
    def backward(self, cache: tuple[Any, ...], grad_actions: torch.Tensor, grad_log_probs: torch.Tensor | float) -> None:
        """Parameter gradients (overwriting ``.grad``) from ``d loss / d actions`` and ``d loss / d log_probs``.

        The first ``len(grad_actions)`` rows of the cached forward pass are differentiated (SAC
        runs the current and the next observations in one forward pass, and trains on the first).
        With ``u = mean + noise * std``, ``a = tanh(u)`` and ``s = 1 - a^2``:
        ``d log_prob / d u = 2 a s / (s + 1e-6)`` (the derivative of the correction
        ``-log(1 - a^2 + 1e-6)``; it vanishes where the action saturates), ``d log_prob / d log_std = -1``
        directly, and ``d u / d log_std = noise * std``; ``log_std`` is clamped, so its gradient
        is zero outside ``[LOG_STD_MIN, LOG_STD_MAX]``.
        """
        layers, inputs, hidden, raw_log_std, std, noise, actions = cache
        rows = grad_actions.shape[0]
        a, raw = actions[:rows], raw_log_std[:rows]
        grad_log_probs = torch.as_tensor(grad_log_probs, dtype=a.dtype, device=a.device)
        grad_log_probs = grad_log_probs.unsqueeze(-1) if grad_log_probs.dim() == 1 else grad_log_probs
        slope = 1.0 - a.square()
        grad_pre = grad_actions * slope + grad_log_probs * 2.0 * a * slope / (slope + SQUASH_EPS)
        in_range = (raw >= LOG_STD_MIN) & (raw <= LOG_STD_MAX)
        grad_log_std = (grad_pre * noise[:rows] * std[:rows] - grad_log_probs) * in_range
        h = hidden[:rows]
        torch.mm(grad_pre.t(), h, out=_grad(self.mean.weight))
        torch.sum(grad_pre, 0, out=_grad(self.mean.bias))
        torch.mm(grad_log_std.t(), h, out=_grad(self.log_std.weight))
        torch.sum(grad_log_std, 0, out=_grad(self.log_std.bias))
        if layers:
            grad_hidden = torch.mm(grad_pre, self.mean.weight.detach())
            grad_hidden.addmm_(grad_log_std, self.log_std.weight.detach())
            activation_backward_(grad_hidden, h, self.activation_name)
            linear_backward(layers, [x[:rows] for x in inputs], grad_hidden, self.activation_name, _workspace(self), "trunk")


class DeterministicActor(nn.Module):
    """TD3's policy: an MLP with a ``tanh`` output in ``[-1, 1]`` (Fujimoto et al. 2018)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], activation: str = "relu") -> None:
        super().__init__()
        self.net = mlp_network(obs_dim, hidden_sizes, action_dim, activation)
        self.activation_name = activation

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions in ``[-1, 1]``."""
        return torch.tanh(self.net(obs))

    @property
    def closed_form(self) -> bool:
        """Whether :meth:`forward_cached` / :meth:`backward` support this network's activation."""
        return self.activation_name in CLOSED_FORM_ACTIVATIONS

    @torch.no_grad()
    def forward_cached(self, obs: torch.Tensor, tag: str = "forward") -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Graph-free :meth:`forward` into reused buffers: ``(actions, layer inputs)`` for :meth:`backward`."""
        out, inputs = linear_forward_cached(_linear_layers(self.net), obs, self.activation_name, _workspace(self), tag)
        return torch.tanh_(out), inputs

    @torch.no_grad()
    def backward(self, inputs: Sequence[torch.Tensor], actions: torch.Tensor, grad_actions: torch.Tensor, tag: str = "forward") -> None:
        """Parameter gradients (overwriting ``.grad``) from ``d loss / d actions`` (``tanh' = 1 - a^2``)."""
        linear_backward(_linear_layers(self.net), inputs, grad_actions * (1.0 - actions.square()), self.activation_name, _workspace(self), tag)


@torch.no_grad()
def polyak_update(target: Iterable[torch.Tensor], online: Iterable[torch.Tensor], tau: float) -> None:
    """``target <- (1 - tau) * target + tau * online`` for every tensor, in one fused call.

    ``tau = 1`` is a hard copy (DQN's periodic target update).
    """
    target_list, online_list = list(target), list(online)
    if tau >= 1.0:
        torch._foreach_copy_(target_list, online_list)
    else:
        torch._foreach_lerp_(target_list, online_list, tau)


def hard_update(target: nn.Module, online: nn.Module) -> None:
    """Copy ``online``'s parameters and buffers into ``target``."""
    target.load_state_dict(online.state_dict())
