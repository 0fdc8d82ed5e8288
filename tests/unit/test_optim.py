"""daedalus.nn.optim.Adam gives exactly torch.optim.Adam's parameters and state."""

from __future__ import annotations

import torch

from daedalus.nn.optim import Adam


def _params() -> list[torch.nn.Parameter]:
    torch.manual_seed(0)
    return [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))]


def _run(ours: list[torch.nn.Parameter], opt_ours: Adam, ref: list[torch.nn.Parameter], opt_ref: torch.optim.Adam, steps: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        for p, q in zip(ours, ref, strict=True):
            grad = torch.randn(p.shape, generator=gen)
            p.grad, q.grad = grad.clone(), grad.clone()
        lr = 1e-2 * (1 - step / 10)  # annealed, as in training
        opt_ours.param_groups[0]["lr"] = lr
        opt_ref.param_groups[0]["lr"] = lr
        opt_ours.step()
        opt_ref.step()


def test_adam_matches_torch_bit_for_bit() -> None:
    ours, ref = _params(), _params()
    opt_ours = Adam(ours, lr=1e-2, eps=1e-5)
    opt_ref = torch.optim.Adam(ref, lr=1e-2, eps=1e-5, fused=True)
    _run(ours, opt_ours, ref, opt_ref, steps=5, seed=1)
    for p, q in zip(ours, ref, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    for (i, mine), (_, theirs) in zip(opt_ours.state_dict()["state"].items(), opt_ref.state_dict()["state"].items(), strict=True):
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(mine[key], theirs[key], rtol=0, atol=0, msg=f"{i}/{key}")


def test_state_dict_round_trip_continues_identically() -> None:
    ours, ref = _params(), _params()
    opt_ours = Adam(ours, lr=1e-2, eps=1e-5)
    opt_ref = torch.optim.Adam(ref, lr=1e-2, eps=1e-5, fused=True)
    _run(ours, opt_ours, ref, opt_ref, steps=3, seed=2)
    # A fresh optimizer loaded from torch's state dict continues exactly where torch does.
    reloaded = Adam(ours, lr=0.5, eps=1.0)
    reloaded.load_state_dict(opt_ref.state_dict())
    assert reloaded.param_groups[0]["eps"] == 1e-5
    _run(ours, reloaded, ref, opt_ref, steps=3, seed=3)
    for p, q in zip(ours, ref, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_step_without_gradient_is_an_error() -> None:
    params = _params()
    opt = Adam(params)
    params[0].grad = torch.ones_like(params[0])
    try:
        opt.step()
    except RuntimeError as exc:
        assert "[1]" in str(exc)
    else:
        raise AssertionError("expected a RuntimeError")


def test_rmsprop_matches_torch() -> None:
    from daedalus.nn.optim import RMSprop

    ours, ref = _params(), _params()
    opt_ours = RMSprop(ours, lr=7e-4, alpha=0.99, eps=1e-5)
    opt_ref = torch.optim.RMSprop(ref, lr=7e-4, alpha=0.99, eps=1e-5)
    _run(ours, opt_ours, ref, opt_ref, steps=6, seed=4)  # type: ignore[arg-type]
    for p, q in zip(ours, ref, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    reloaded = RMSprop(ours, lr=1.0)
    reloaded.load_state_dict(opt_ref.state_dict())
    _run(ours, reloaded, ref, opt_ref, steps=3, seed=5)  # type: ignore[arg-type]
    for p, q in zip(ours, ref, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
