"""Optimizer steps without per-step Python bookkeeping.

``torch.optim.Adam(fused=True).step()`` spends most of its time on a tiny network in Python:
profiler hooks, state lookups and regrouping tensors by device, every step. :func:`adam_step`
makes the same single fused kernel call on lists gathered once, and falls back to
``optimizer.step()`` whenever its assumptions do not hold (several parameter groups, options
it does not handle, state not yet created or replaced by ``load_state_dict``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch


@dataclass
class _AdamLists:
    params: list[torch.Tensor]
    exp_avgs: list[torch.Tensor]
    exp_avg_sqs: list[torch.Tensor]
    steps: list[torch.Tensor]


_CACHE: weakref.WeakKeyDictionary[torch.optim.Optimizer, _AdamLists] = weakref.WeakKeyDictionary()


def _lists(optimizer: torch.optim.Adam) -> _AdamLists | None:
    (group,) = optimizer.param_groups
    params = [p for p in group["params"] if p.grad is not None]
    if len(params) != len(group["params"]):
        return None
    cached = _CACHE.get(optimizer)
    first = optimizer.state.get(params[0])
    if cached is not None and first is not None and cached.exp_avgs[0] is first.get("exp_avg"):
        return cached
    states = [optimizer.state.get(p) for p in params]
    if any(not s or "exp_avg" not in s for s in states):
        return None  # the first step creates the state
    lists = _AdamLists(
        params,
        [s["exp_avg"] for s in states],  # type: ignore[index]
        [s["exp_avg_sq"] for s in states],  # type: ignore[index]
        [s["step"] for s in states],  # type: ignore[index]
    )
    _CACHE[optimizer] = lists
    return lists


def adam_step(optimizer: torch.optim.Optimizer) -> None:
    """One step of a fused Adam with a single parameter group; same result as ``optimizer.step()``."""
    if not isinstance(optimizer, torch.optim.Adam) or len(optimizer.param_groups) != 1:
        optimizer.step()
        return
    group = optimizer.param_groups[0]
    plain = group["fused"] and not (
        group["amsgrad"] or group["maximize"] or group["capturable"] or group["differentiable"] or group["weight_decay"]
        or group.get("decoupled_weight_decay", False) or isinstance(group["lr"], torch.Tensor)
    )
    lists = _lists(optimizer) if plain else None
    if lists is None:
        optimizer.step()
        return
    beta1, beta2 = group["betas"]
    torch._foreach_add_(lists.steps, 1)
    torch._fused_adam_(
        lists.params,
        [p.grad for p in lists.params],
        lists.exp_avgs,
        lists.exp_avg_sqs,
        [],
        lists.steps,
        amsgrad=False,
        lr=group["lr"],
        beta1=beta1,
        beta2=beta2,
        weight_decay=0.0,
        eps=group["eps"],
        maximize=False,
    )
