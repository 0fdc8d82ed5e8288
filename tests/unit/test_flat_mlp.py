"""FlatMLP: the closed-form backward pass equals autograd's gradients; Polyak / hard target updates."""

from __future__ import annotations

import pytest
import torch

from daedalus.nn.flat import FlatMLP
from daedalus.nn.offpolicy import EnsembleMLP, polyak_update


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_closed_form_gradients_matches_autograd(activation: str) -> None:
    torch.manual_seed(0)
    net = FlatMLP([5, 32, 16, 3], activation)
    x = torch.randn(64, 5, dtype=torch.float32)
    grad_out = torch.randn(64, 3)
    # Autograd reference: d/dflat of sum(out * grad_out) is the backward of grad_out.
    x_ref = x.clone().requires_grad_(True)
    (net(x_ref) * grad_out).sum().backward()
    reference = net.flat.grad.clone()
    net.flat.grad = None
    out, inputs = net.forward_cached(x)
    torch.testing.assert_close(out, net(x).detach())
    input_grad = net.backward(inputs, grad_out, input_grad=True)
    torch.testing.assert_close(net.flat.grad, reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(input_grad, x_ref.grad, rtol=1e-5, atol=1e-6)
    # backward overwrites (not accumulates): a second call gives the same gradient.
    net.backward(inputs, grad_out)
    torch.testing.assert_close(net.flat.grad, reference, rtol=1e-5, atol=1e-6)


def test_flat_parameters_are_views_and_init_bounds() -> None:
    net = FlatMLP([4, 8, 2])
    weights, biases = net._views(net.flat)
    assert [tuple(w.shape) for w in weights] == [(8, 4), (2, 8)]
    assert weights[0].data_ptr() == net.flat.data_ptr()
    assert weights[0].abs().max() <= 0.5 and weights[1].abs().max() <= 1 / 8**0.5
    assert net.flat.numel() == 8 * 4 + 8 + 2 * 8 + 2


def test_polyak_update_exact_numbers() -> None:
    target = [torch.tensor([0.0, 10.0]), torch.tensor([[2.0]])]
    online = [torch.tensor([1.0, 20.0]), torch.tensor([[4.0]])]
    polyak_update(target, online, tau=0.25)  # 0.75 * target + 0.25 * online
    torch.testing.assert_close(target[0], torch.tensor([0.25, 12.5]))
    torch.testing.assert_close(target[1], torch.tensor([[2.5]]))
    polyak_update(target, online, tau=0.5)
    torch.testing.assert_close(target[0], torch.tensor([0.625, 16.25]))
    polyak_update(target, online, tau=1.0)  # hard update: an exact copy
    torch.testing.assert_close(target[0], online[0], rtol=0, atol=0)
    online[0] += 1  # a copy, not an alias
    assert target[0][0] == 1.0


def test_ensemble_members_are_independent_mlps() -> None:
    torch.manual_seed(0)
    ensemble = EnsembleMLP(2, 3, [8], 1)
    x = torch.randn(5, 3)
    out = ensemble(x)
    assert out.shape == (2, 5, 1)
    for k in range(2):
        h = torch.relu(x @ ensemble.weights[0][k] + ensemble.biases[0][k])
        torch.testing.assert_close(out[k], h @ ensemble.weights[1][k] + ensemble.biases[1][k])
    # detach_params: gradients reach the input only.
    x.requires_grad_(True)
    ensemble(x, detach_params=True).sum().backward()
    assert x.grad is not None and all(w.grad is None for w in ensemble.weights)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_numpy_forward_matches_torch_and_follows_in_place_updates(activation: str) -> None:
    torch.manual_seed(0)
    net = FlatMLP([4, 16, 16, 2], activation)
    x = torch.randn(3, 4)
    torch.testing.assert_close(torch.from_numpy(net.forward_numpy(x.numpy())), net(x).detach(), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        net.flat.mul_(0.5)  # what an optimizer step does: in place, same storage
    torch.testing.assert_close(torch.from_numpy(net.forward_numpy(x.numpy())), net(x).detach(), rtol=1e-5, atol=1e-6)
