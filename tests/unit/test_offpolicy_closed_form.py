"""The closed-form passes of the off-policy networks and of SAC's and TD3's gradient steps equal autograd.

Each test builds the same computation twice, once with autograd on the modules' ordinary
``forward`` and once with ``forward_cached`` + ``backward``, in float64 so that the comparison is
tight (1e-10) and a wrong term (a missing factor 2, a sign, a forgotten clamp mask) fails loudly.
The full-update tests run in float32 like training does and compare every parameter after one
step of each path.
"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from replay_helpers import fill_replay

from daedalus.algos.sac import SACConfig, make_sac_agent, sac_update
from daedalus.algos.td3 import TD3Config, make_td3_agent, td3_update
from daedalus.nn.offpolicy import (
    DeterministicActor,
    EnsembleMLP,
    SquashedGaussianActor,
    Workspace,
    linear_backward,
    linear_forward_cached,
)

TIGHT = {"rtol": 1e-10, "atol": 1e-10}


@pytest.fixture(autouse=True)
def _float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_ensemble_forward_and_backward_equal_autograd(activation: str) -> None:
    torch.manual_seed(0)
    ensemble = EnsembleMLP(2, 5, [7, 6], 3, activation)
    x = torch.randn(11, 5, requires_grad=True)
    grad_out = torch.randn(2, 11, 3)
    out = ensemble(x)
    (out * grad_out).sum().backward()
    expected = [p.grad.clone() for p in ensemble.parameters()]
    expected_input = x.grad.clone()

    for p in ensemble.parameters():
        p.grad = None
    cached, inputs = ensemble.forward_cached(x.detach())
    torch.testing.assert_close(cached, out.detach(), **TIGHT)
    grad_in = ensemble.backward(inputs, grad_out, input_grad=True)
    for p, want in zip(ensemble.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, want, **TIGHT)
    assert grad_in is not None
    torch.testing.assert_close(grad_in.sum(0), expected_input, **TIGHT)  # members share the input


def test_ensemble_first_member_only_and_input_grad_without_weight_grads() -> None:
    torch.manual_seed(1)
    ensemble = EnsembleMLP(2, 4, [8], 1)
    x = torch.randn(9, 4, requires_grad=True)
    ensemble(x)[0].sum().backward()
    out, inputs = ensemble.forward_cached(x.detach(), members=1)
    assert out.shape == (1, 9, 1)
    torch.testing.assert_close(out[0], ensemble(x.detach())[0], **TIGHT)
    before = [None if p.grad is None else p.grad.clone() for p in ensemble.parameters()]
    grad_in = ensemble.backward(inputs, torch.ones_like(out), weight_grads=False, input_grad=True)
    assert grad_in is not None
    torch.testing.assert_close(grad_in[0], x.grad, **TIGHT)
    for p, old in zip(ensemble.parameters(), before, strict=True):  # weight gradients untouched
        torch.testing.assert_close(p.grad, old)


@pytest.mark.parametrize("activate_last", [False, True])
def test_linear_stack_equals_autograd(activate_last: bool) -> None:
    torch.manual_seed(2)
    layers = [torch.nn.Linear(4, 6), torch.nn.Linear(6, 5)]
    x = torch.randn(10, 4)
    h = torch.relu(layers[0](x))
    out = layers[1](h)
    out = torch.relu(out) if activate_last else out
    grad_out = torch.randn(10, 5)
    (out * grad_out).sum().backward()
    expected = [p.grad.clone() for layer in layers for p in layer.parameters()]
    cached, inputs = linear_forward_cached(layers, x, "relu", Workspace(), "t", activate_last)
    torch.testing.assert_close(cached, out.detach(), **TIGHT)
    grad = grad_out * (cached > 0) if activate_last else grad_out
    linear_backward(layers, inputs, grad, "relu", Workspace(), "t")
    for p, want in zip([p for layer in layers for p in layer.parameters()], expected, strict=True):
        torch.testing.assert_close(p.grad, want, **TIGHT)


def test_squashed_gaussian_backward_equals_autograd_on_leading_rows() -> None:
    torch.manual_seed(3)
    actor = SquashedGaussianActor(3, 2, [8, 8])
    with torch.no_grad():  # push some log-stds outside the clamp so its mask is exercised
        actor.log_std.bias.copy_(torch.tensor([2.5, -0.3]))
    obs = torch.randn(12, 3)
    generator = torch.Generator().manual_seed(4)
    actions, log_probs = actor(obs, generator)
    rows = 7
    grad_actions, grad_log_probs = torch.randn(rows, 2), torch.randn(rows)
    ((actions[:rows] * grad_actions).sum() + (log_probs[:rows] * grad_log_probs).sum()).backward()
    expected = [p.grad.clone() for p in actor.parameters()]

    for p in actor.parameters():
        p.grad = None
    noise = torch.randn((12, 2), generator=torch.Generator().manual_seed(4))
    cached_actions, cached_log_probs, cache = actor.forward_cached(obs, noise)
    torch.testing.assert_close(cached_actions, actions.detach(), **TIGHT)
    torch.testing.assert_close(cached_log_probs, log_probs.detach(), **TIGHT)
    actor.backward(cache, grad_actions, grad_log_probs)
    for p, want in zip(actor.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, want, **TIGHT)


def test_deterministic_actor_backward_equals_autograd() -> None:
    torch.manual_seed(5)
    actor = DeterministicActor(3, 2, [8, 6], "tanh")
    obs = torch.randn(10, 3)
    grad_actions = torch.randn(10, 2)
    (actor(obs) * grad_actions).sum().backward()
    expected = [p.grad.clone() for p in actor.parameters()]
    actions, inputs = actor.forward_cached(obs)
    torch.testing.assert_close(actions, actor(obs).detach(), **TIGHT)
    actor.backward(inputs, actions, grad_actions)
    for p, want in zip(actor.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, want, **TIGHT)


# --------------------------------------------------------------------------- whole gradient steps

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACT = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)


def _buffer(agent):
    return fill_replay(agent, steps=80, capacity=400)


def _same_step(make, update, config_closed, config_autograd, modules) -> None:
    torch.set_default_dtype(torch.float32)
    agent = make(OBS, ACT, config_closed, seed=0)
    twin = copy.deepcopy(agent)
    buffer = _buffer(agent)
    twin_buffer = copy.deepcopy(buffer)
    for _ in range(3):  # several steps: Adam moments, targets and the temperature evolve too
        metrics = update(agent, buffer, config_closed)
        twin_metrics = update(twin, twin_buffer, config_autograd)
    for name in modules:
        for (key, p), q in zip(getattr(agent, name).state_dict().items(), getattr(twin, name).state_dict().values(), strict=True):
            torch.testing.assert_close(p, q, rtol=2e-5, atol=2e-6, msg=f"{name}.{key}")
    assert metrics.keys() == twin_metrics.keys()
    for key in metrics:
        torch.testing.assert_close(metrics[key].float(), twin_metrics[key].float(), rtol=1e-4, atol=1e-5, msg=key)


def test_sac_closed_form_update_equals_autograd_update() -> None:
    base = {"hidden_sizes": [32, 32], "batch_size": 64, "gradient_steps": 2}
    _same_step(make_sac_agent, sac_update, SACConfig(**base), SACConfig(**base, closed_form_gradients=False), ["actor", "critic", "critic_target"])


def test_sac_closed_form_update_with_fixed_temperature() -> None:
    base = {"hidden_sizes": [16], "batch_size": 32, "autotune_entropy": False, "initial_alpha": 0.3}
    _same_step(make_sac_agent, sac_update, SACConfig(**base), SACConfig(**base, closed_form_gradients=False), ["actor", "critic"])


def test_td3_closed_form_update_equals_autograd_update() -> None:
    base = {"hidden_sizes": [32, 24], "batch_size": 64, "gradient_steps": 3, "policy_delay": 2}
    _same_step(make_td3_agent, td3_update, TD3Config(**base), TD3Config(**base, closed_form_gradients=False), ["actor", "actor_target", "critic", "critic_target"])


def test_unsupported_activation_falls_back_to_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    import daedalus.algos.sac as sac

    def closed_form_must_not_run(*args, **kwargs):
        raise AssertionError("elu networks have no closed form")

    monkeypatch.setattr(sac, "sac_closed_form_step", closed_form_must_not_run)
    torch.set_default_dtype(torch.float32)
    config = SACConfig(hidden_sizes=[8], batch_size=16, activation="elu")
    agent = make_sac_agent(OBS, ACT, config, seed=0)
    assert not agent.critic.closed_form and not agent.actor.closed_form
    before = [p.detach().clone() for p in agent.actor.parameters()]
    sac_update(agent, _buffer(agent), config)
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, agent.actor.parameters(), strict=True))


def test_workspace_keeps_one_buffer_per_name_and_shape() -> None:
    workspace, like = Workspace(), torch.zeros(1)
    both = workspace.get("critic/h0", (2, 4, 3), like)
    first = workspace.get("critic/h0", (1, 4, 3), like)  # TD3's first-critic pass
    assert both.data_ptr() != first.data_ptr()
    assert workspace.get("critic/h0", (2, 4, 3), like) is both  # no reallocation when switching back
    assert workspace.get("critic/h0", (1, 4, 3), like) is first
