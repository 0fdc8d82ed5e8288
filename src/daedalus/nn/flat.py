"""MLPs on one flat parameter tensor, with a closed-form backward pass.

Why: for the small MLPs of classic-control RL, a CPU gradient step is dominated by per-op
overhead, not arithmetic. Measured on a 2-core Xeon (torch 2.13, 1 thread) for a 4-256-256-2
Q-network at batch 64: the three matmuls of a backward pass cost ~0.15 ms, autograd's backward
~0.33 ms, gradient clipping over 6 tensors ~0.06 ms and fused Adam over 6 tensors ~0.09 ms.
:class:`FlatMLP` keeps every weight and bias as a *view* into one ``flat`` parameter, so

- the optimizer (fused Adam) and gradient clipping see one tensor: one kernel each;
- :meth:`FlatMLP.backward` writes the exact gradients (verified against autograd in
  ``tests/unit/test_flat_mlp.py``) straight into views of ``flat.grad``: a handful of ``mm`` calls
  and no graph bookkeeping.

``forward`` is an ordinary autograd-capable forward pass, so a FlatMLP can be trained either way:
with ``loss.backward()`` (any loss) or with :meth:`forward_cached` + :meth:`backward` (the fast path,
when the loss gradient with respect to the output is known in closed form).

Hidden activations: ``relu`` or ``tanh`` (their derivatives are computed from the outputs).
Initialization is ``torch.nn.Linear``'s default: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["FlatMLP", "numpy_layers"]

FLAT_ACTIVATIONS = ("relu", "tanh")


def numpy_layers(layers: Sequence[tuple[np.ndarray, np.ndarray]], x: np.ndarray, activation: str, activate_last: bool = False) -> np.ndarray:
    """``x @ W^T + b`` per ``(W^T, b)`` layer in numpy, ``relu``/``tanh`` in place between layers (and after the last if asked).

    The acting path of the built-in agents (DQN's Q-network, PPO/A2C's actor-critic): for a few
    rows, numpy on zero-copy views of the live weights costs ~2 us per layer against ~5 us per torch op.
    """
    last = len(layers) - 1
    for index, (weight_t, bias) in enumerate(layers):
        x = x @ weight_t
        x += bias
        if index < last or activate_last:
            if activation == "relu":
                np.maximum(x, 0.0, out=x)
            else:
                np.tanh(x, out=x)
    return x


class FlatMLP(nn.Module):
    """``sizes[0] → sizes[1] → ... → sizes[-1]``, activation between layers, linear output."""

    def __init__(self, sizes: Sequence[int], activation: str = "relu") -> None:
        super().__init__()
        if activation not in FLAT_ACTIVATIONS:
            raise ValueError(f"FlatMLP supports activations {FLAT_ACTIVATIONS}, got {activation!r}")
        self.sizes = [int(size) for size in sizes]
        self.activation = activation
        self.shapes = [(fan_out, fan_in) for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:], strict=True)]
        total = sum(out * inp + out for out, inp in self.shapes)
        self.flat = nn.Parameter(torch.empty(total))
        with torch.no_grad():
            for weight, bias in zip(*self._views(self.flat), strict=True):
                bound = 1.0 / math.sqrt(weight.shape[1])
                weight.uniform_(-bound, bound)
                bias.uniform_(-bound, bound)

    def _views(self, flat: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Weight ``(out, in)`` and bias ``(out,)`` views into ``flat``, layer by layer."""
        weights, biases, offset = [], [], 0
        for out, inp in self.shapes:
            weights.append(flat[offset : offset + out * inp].view(out, inp))
            offset += out * inp
            biases.append(flat[offset : offset + out])
            offset += out
        return weights, biases

    def _cached_views(self, flat: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """:meth:`_views` of a tensor that is updated in place (the weights, their gradient), made once.

        Building 2 views per layer costs ~4 us per op on a CPU, as much as the small ops of a
        step; the cache is keyed by the storage pointer, so a moved or replaced tensor gets new views.
        """
        key = (flat.data_ptr(), flat.shape[0])
        cache: dict[Any, Any] = self.__dict__.setdefault("_view_cache", {})
        if key not in cache:
            if len(cache) > 8:
                cache.clear()
            cache[key] = self._views(flat)
        return cache[key]

    def _act(self, h: torch.Tensor) -> torch.Tensor:
        return torch.relu_(h) if self.activation == "relu" else torch.tanh_(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Forward pass: autograd-capable when gradients are enabled, else the cached-view fast path."""
        if not torch.is_grad_enabled():
            return self._forward_no_grad(x)[0]
        weights, biases = self._views(self.flat)
        h = x
        for index, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
            h = torch.addmm(bias, h, weight.t())
            if index < len(weights) - 1:
                h = torch.relu(h) if self.activation == "relu" else torch.tanh(h)
        return h

    def _forward_no_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        weights, biases = self._cached_views(self.flat.detach())
        inputs = [x]
        h = x
        for index, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
            h = torch.addmm(bias, h, weight.t())
            if index < len(weights) - 1:
                h = self._act(h)
                inputs.append(h)
        return h, inputs

    def forward_numpy(self, x: np.ndarray) -> np.ndarray:
        """Forward pass in numpy on the live CPU weights (no copy): for acting on a few rows.

        For one or a few observations per env step, torch's per-call dispatch (~5 us per op,
        plus ``inference_mode``) costs more than the arithmetic; numpy on zero-copy views of
        ``flat`` (which the optimizer updates in place) takes ~2 us per layer.
        """
        cache: dict[Any, Any] = self.__dict__.setdefault("_view_cache", {})
        key = ("numpy", self.flat.data_ptr())
        if key not in cache:
            weights, biases = self._views(self.flat.detach())
            cache[key] = ([w.numpy().T for w in weights], [b.numpy() for b in biases])
        weights_t, biases = cache[key]
        return numpy_layers(list(zip(weights_t, biases, strict=True)), np.asarray(x, dtype=np.float32), self.activation)

    @torch.no_grad()
    def forward_cached(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Forward pass without a graph; returns the output and the layer inputs :meth:`backward` needs."""
        return self._forward_no_grad(x)

    @torch.no_grad()
    def backward(self, inputs: list[torch.Tensor], grad_output: torch.Tensor, input_grad: bool = False) -> torch.Tensor | None:
        """Write ``d loss / d flat`` into ``flat.grad`` (overwritten, not accumulated) from ``d loss / d output``.

        ``inputs`` comes from :meth:`forward_cached`. Returns ``d loss / d x`` when ``input_grad``.
        """
        if self.flat.grad is None:
            self.flat.grad = torch.zeros_like(self.flat)
        weights, _ = self._cached_views(self.flat.detach())
        grad_weights, grad_biases = self._cached_views(self.flat.grad)
        grad = grad_output
        for index in range(len(weights) - 1, -1, -1):
            torch.mm(grad.t(), inputs[index], out=grad_weights[index])
            torch.sum(grad, 0, out=grad_biases[index])
            if index == 0 and not input_grad:
                return None
            grad = grad @ weights[index]
            if index > 0:
                # The activation's derivative from its output h (relu' = [h > 0], tanh' = 1 - h^2),
                # with aten's fused backward kernels: one op, no bool-to-float temporaries.
                h = inputs[index]
                grad = torch.ops.aten.threshold_backward(grad, h, 0.0) if self.activation == "relu" else torch.ops.aten.tanh_backward(grad, h)
        return grad
