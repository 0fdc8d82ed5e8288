"""Adam on torch's fused kernel, without ``torch.optim``'s per-step Python bookkeeping.

Two reasons not to use ``torch.optim.Adam`` for the small networks of the built-in algorithms:
constructing any ``torch.optim`` optimizer imports ``torch._dynamo`` (about 1 s of start-up
on this machine, more than a whole CartPole training run), and each ``step()`` spends most of
its time on profiler hooks, state lookups and regrouping tensors by device. :class:`Adam`
keeps its state in lists and makes one ``torch._fused_adam_`` call per step: the same update,
bit for bit (checked in ``tests/unit/test_optim.py``). Its ``state_dict()`` has the layout of
``torch.optim.Adam.state_dict()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import torch


class Optimizer(Protocol):
    """What the algorithms and checkpoints need from an optimizer (torch's optimizers fit too)."""

    param_groups: list[dict[str, Any]]

    def step(self) -> Any:
        """Apply one update from the parameters' gradients."""

    def state_dict(self) -> dict[str, Any]:
        """The state in ``torch.optim``'s layout."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


class Adam:
    """Adam (Kingma & Ba, 2015) with bias correction, no weight decay, no AMSGrad.

    ``param_groups[0]["lr"]`` may be changed between steps (learning-rate schedules), as with
    torch's optimizers. Every parameter must have a gradient when :meth:`step` is called.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.param_groups: list[dict[str, Any]] = [{"lr": lr, "betas": tuple(betas), "eps": eps}]
        self._reset_state()

    def _reset_state(self) -> None:
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        # The fused kernel takes one float32 step counter per parameter, as torch.optim.Adam keeps them.
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]

    def zero_grad(self) -> None:
        """Drop every gradient (set to ``None``)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """Apply one Adam update from the parameters' ``.grad``."""
        group = self.param_groups[0]
        beta1, beta2 = group["betas"]
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            missing = [i for i, g in enumerate(grads) if g is None]
            raise RuntimeError(f"Adam.step(): parameters {missing} have no gradient")
        torch._foreach_add_(self.steps, 1)
        torch._fused_adam_(
            self.params,
            grads,  # type: ignore[arg-type]
            self.exp_avgs,
            self.exp_avg_sqs,
            [],
            self.steps,
            amsgrad=False,
            lr=float(group["lr"]),
            beta1=beta1,
            beta2=beta2,
            weight_decay=0.0,
            eps=group["eps"],
            maximize=False,
        )

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [...]}`` like torch."""
        state = {
            i: {"step": step, "exp_avg": avg, "exp_avg_sq": sq}
            for i, (step, avg, sq) in enumerate(zip(self.steps, self.exp_avgs, self.exp_avg_sqs, strict=True))
            if float(step) > 0
        }
        group = {**self.param_groups[0], "params": list(range(len(self.params)))}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` (or ``torch.optim.Adam.state_dict``) returned."""
        self._reset_state()
        for index, entry in state_dict.get("state", {}).items():
            i = int(index)
            self.steps[i].copy_(torch.as_tensor(entry["step"], dtype=torch.float32))
            self.exp_avgs[i].copy_(entry["exp_avg"])
            self.exp_avg_sqs[i].copy_(entry["exp_avg_sq"])
        groups = state_dict.get("param_groups") or [{}]
        saved = {k: v for k, v in groups[0].items() if k in ("lr", "betas", "eps")}
        if "betas" in saved:
            saved["betas"] = tuple(saved["betas"])
        self.param_groups[0].update(saved)


class RMSprop:
    """RMSprop as ``torch.optim.RMSprop`` computes it (eps added after the square root), no momentum.

    A2C's optimizer (SB3: ``alpha=0.99, eps=1e-5``). Five ``torch._foreach_*`` calls per step;
    ``state_dict()`` has torch's layout (``step``, ``square_avg`` per parameter).
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8) -> None:
        self.params = list(params)
        self.param_groups: list[dict[str, Any]] = [{"lr": lr, "alpha": alpha, "eps": eps}]
        self._reset_state()

    def _reset_state(self) -> None:
        self.square_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in self.params]

    def zero_grad(self) -> None:
        """Drop every gradient (set to ``None``)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """``v = alpha v + (1 - alpha) g^2; p -= lr g / (sqrt(v) + eps)``."""
        group = self.param_groups[0]
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            raise RuntimeError("RMSprop.step(): every parameter needs a gradient")
        torch._foreach_add_(self.steps, 1)
        torch._foreach_mul_(self.square_avgs, group["alpha"])
        torch._foreach_addcmul_(self.square_avgs, grads, grads, value=1 - group["alpha"])  # type: ignore[arg-type]
        denominators = torch._foreach_sqrt(self.square_avgs)
        torch._foreach_add_(denominators, group["eps"])
        torch._foreach_addcdiv_(self.params, grads, denominators, value=-float(group["lr"]))  # type: ignore[arg-type]

    def state_dict(self) -> dict[str, Any]:
        """torch's layout: ``{"state": {i: {"step", "square_avg"}}, "param_groups": [...]}``."""
        state = {
            i: {"step": step, "square_avg": avg}
            for i, (step, avg) in enumerate(zip(self.steps, self.square_avgs, strict=True))
            if float(step) > 0
        }
        return {"state": state, "param_groups": [{**self.param_groups[0], "params": list(range(len(self.params)))}]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self._reset_state()
        for index, entry in state_dict.get("state", {}).items():
            self.steps[int(index)].copy_(torch.as_tensor(entry["step"], dtype=torch.float32))
            self.square_avgs[int(index)].copy_(entry["square_avg"])
        groups = state_dict.get("param_groups") or [{}]
        self.param_groups[0].update({k: v for k, v in groups[0].items() if k in ("lr", "alpha", "eps")})
