"""daedalus.sampling: schedules by hand, sampler statistics within binomial tolerances, seeding."""

from __future__ import annotations

import math

import numpy as np
import pytest

from daedalus.errors import DaedalusError
from daedalus.sampling import (
    ActionSampler,
    Boltzmann,
    ConstantSchedule,
    DiagonalGaussian,
    EpsilonGreedy,
    ExponentialSchedule,
    Greedy,
    LinearSchedule,
    as_schedule,
    make_sampler,
)

N = 20_000


def within_binomial(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    """Whether ``count`` successes of ``n`` fit probability ``p`` (normal approximation)."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


# --------------------------------------------------------------------------- schedules


def test_schedules_match_hand_computed_values() -> None:
    linear = LinearSchedule(1.0, 0.1, 100)
    assert [linear(s) for s in (0, 50, 100, 1000)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    exponential = ExponentialSchedule(1.0, 0.2, 0.5)
    assert [exponential(s) for s in (0, 1, 2, 3)] == pytest.approx([1.0, 0.5, 0.25, 0.2])
    assert ConstantSchedule(0.3)(10**6) == 0.3


def test_as_schedule_reads_numbers_and_yaml_mappings() -> None:
    assert as_schedule(0.2)(5) == 0.2
    assert as_schedule({"kind": "linear", "start": 1, "end": 0, "duration_steps": 4})(1) == 0.75
    assert as_schedule({"kind": "exponential", "start": 1, "end": 0, "decay": 0.9})(
        2
    ) == pytest.approx(0.81)
    with pytest.raises(DaedalusError, match="Did you mean 'linear'"):
        as_schedule({"kind": "lineer", "start": 1, "end": 0, "duration_steps": 4})
    with pytest.raises(ValueError, match="duration_steps"):
        LinearSchedule(1.0, 0.0, 0)


# --------------------------------------------------------------------------- epsilon-greedy


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.3, 1.0])
def test_epsilon_greedy_frequencies(epsilon: float) -> None:
    values = np.tile(np.array([0.1, 0.9, 0.3, 0.2]), (N, 1))
    actions = EpsilonGreedy(epsilon, seed=1).select(values)
    assert actions.shape == (N,)
    p_greedy = 1 - epsilon + epsilon / 4
    assert within_binomial(int((actions == 1).sum()), N, p_greedy)
    for other in (0, 2, 3):
        assert within_binomial(int((actions == other).sum()), N, epsilon / 4)


def test_epsilon_follows_its_schedule_and_probabilities_agree() -> None:
    sampler = EpsilonGreedy(LinearSchedule(1.0, 0.0, 10), seed=0)
    values = np.tile(np.array([0.0, 1.0]), (N, 1))
    early = sampler.select(values, step=0)
    late = sampler.select(values, step=10)
    assert within_binomial(int((early == 1).sum()), N, 0.5)
    assert (late == 1).all()
    assert sampler.probabilities(values[0], step=5) == pytest.approx([0.25, 0.75])


def test_same_seed_same_actions_and_single_input_gives_a_scalar() -> None:
    values = np.random.default_rng(0).normal(size=(100, 5))
    a = EpsilonGreedy(0.5, seed=7).select(values)
    b = EpsilonGreedy(0.5, seed=7).select(values)
    assert (a == b).all()
    one = EpsilonGreedy(0.0, seed=0).select(np.array([0.0, 2.0, 1.0]))
    assert np.ndim(one) == 0 and int(one) == 1


def test_greedy_breaks_ties_uniformly_with_a_seed() -> None:
    values = np.zeros((N, 4))
    values[:, 3] = -1.0
    actions = Greedy(seed=3).select(values)
    for action in (0, 1, 2):
        assert within_binomial(int((actions == action).sum()), N, 1 / 3)
    assert (actions != 3).all()
    assert (Greedy(random_ties=False).select(values) == 0).all()


# --------------------------------------------------------------------------- Boltzmann / Thompson


def test_low_temperature_is_near_greedy_high_is_near_uniform() -> None:
    values = np.tile(np.array([1.0, 2.0, 0.5]), (N, 1))
    cold = Boltzmann(1e-3, seed=0).select(values)
    assert (cold == 1).all()
    hot = Boltzmann(1e6, seed=0).select(values)
    for action in range(3):
        assert within_binomial(int((hot == action).sum()), N, 1 / 3)


def test_boltzmann_matches_softmax_probabilities() -> None:
    values = np.array([0.0, 1.0, 2.0])
    sampler = Boltzmann(0.5, seed=2)
    expected = np.exp(values / 0.5) / np.exp(values / 0.5).sum()
    assert sampler.probabilities(values) == pytest.approx(expected)
    actions = sampler.select(np.tile(values, (N, 1)))
    for action in range(3):
        assert within_binomial(int((actions == action).sum()), N, float(expected[action]))
    # Large values do not overflow.
    assert Boltzmann(1.0).probabilities(np.array([1000.0, 0.0])) == pytest.approx([1.0, 0.0])
    with pytest.raises(DaedalusError, match="positive"):
        Boltzmann(0.0).select(values)


def test_really_style_model_output_dicts() -> None:
    assert (
        int(make_sampler("thompson", temperature=1e-3, seed=0).select({"q_values": [0.0, 3.0]}))
        == 1
    )
    action = make_sampler("continuous_normal_diagonal", seed=0).select(
        {"mu": [0.5], "sigma": [0.0]}
    )
    assert action == pytest.approx([0.5])


# --------------------------------------------------------------------------- Gaussian


def test_gaussian_mean_std_and_clipping() -> None:
    mu = np.tile(np.array([0.0, 1.0]), (N, 1))
    sigma = np.array([1.0, 0.5])
    actions = DiagonalGaussian(seed=4).select((mu, sigma))
    assert actions.shape == (N, 2)
    tolerance = 4 / math.sqrt(N)
    assert actions.mean(axis=0) == pytest.approx([0.0, 1.0], abs=tolerance * 1.0)
    assert actions.std(axis=0) == pytest.approx([1.0, 0.5], rel=0.03)
    clipped = DiagonalGaussian(low=-0.5, high=0.5, seed=4).select((np.zeros(N), 1.0))
    assert clipped.min() >= -0.5 and clipped.max() <= 0.5
    # P(|z| > 0.5) for a standard normal: the mass piled on the bounds.
    p_outside = math.erfc(0.5 / math.sqrt(2))
    assert within_binomial(int((np.abs(clipped) == 0.5).sum()), N, p_outside)
    with pytest.raises(DaedalusError, match="sigma"):
        DiagonalGaussian().select((0.0, -1.0))


def test_gaussian_bounds_from_a_box_space() -> None:
    gym = pytest.importorskip("gymnasium")
    space = gym.spaces.Box(low=-2.0, high=2.0, shape=(1,))
    actions = DiagonalGaussian.from_space(space, seed=0).select((np.zeros((1000, 1)), 10.0))
    assert actions.min() >= -2.0 and actions.max() <= 2.0


# --------------------------------------------------------------------------- by name


def test_samplers_by_name() -> None:
    for name in ("epsilon_greedy", "thompson", "boltzmann", "continuous_normal_diagonal", "greedy"):
        assert isinstance(make_sampler(name, seed=0), ActionSampler)
    with pytest.raises(DaedalusError, match="Did you mean 'continuous_normal_diagonal'"):
        make_sampler("continous_normal_diagonal")
    with pytest.raises(DaedalusError, match="epsilon_greedy"):
        make_sampler("epsilon_greedy", temperature=1.0)
