"""adam_step gives the same parameters and state as torch's fused Adam step."""

from __future__ import annotations

import torch

from daedalus.nn.optim import adam_step


def _setup() -> tuple[list[torch.nn.Parameter], torch.optim.Adam]:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))]
    return params, torch.optim.Adam(params, lr=1e-2, eps=1e-5, fused=True)


def test_adam_step_matches_torch() -> None:
    ours, opt_ours = _setup()
    ref, opt_ref = _setup()
    for step in range(5):
        grads = [torch.randn_like(p) for p in ours]
        for p, q, g in zip(ours, ref, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        for group in (*opt_ours.param_groups, *opt_ref.param_groups):
            group["lr"] = 1e-2 * (1 - step / 10)  # annealed, as in training
        adam_step(opt_ours)
        opt_ref.step()
    for p, q in zip(ours, ref, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(opt_ours.state[p][key], opt_ref.state[q][key], rtol=0, atol=0)


def test_adam_step_follows_a_reloaded_state() -> None:
    ours, opt_ours = _setup()
    ref, opt_ref = _setup()
    for p, q in zip(ours, ref, strict=True):
        p.grad = torch.ones_like(p)
        q.grad = torch.ones_like(q)
    adam_step(opt_ours)
    adam_step(opt_ours)
    opt_ref.step()
    opt_ref.step()
    # load_state_dict replaces the state tensors: the cached lists must not be used.
    opt_ours.load_state_dict(opt_ref.state_dict())
    with torch.no_grad():
        for p, q in zip(ours, ref, strict=True):
            p.copy_(q)
    adam_step(opt_ours)
    opt_ref.step()
    for p, q in zip(ours, ref, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
