"""Action-sampling strategies: turn action values or distribution parameters into actions.

One small interface, usable by any agent (stepwise, Crete-style or built-in)::

    sampler = make_sampler("epsilon_greedy", epsilon=LinearSchedule(1.0, 0.05, 10_000), seed=0)
    actions = sampler.select(q_values, step)      # q_values: (batch, n_actions) -> (batch,)
    action = sampler.select(q_values[0], step)    # (n_actions,) -> one action

Every sampler has ``select(values_or_params, step=0)``. Discrete samplers take action values
(or logits) whose last axis is the action axis and return integer actions with the leading
shape; the continuous sampler takes ``(mu, sigma)`` and returns actions of their shape.
ReAllY-style model outputs (a dict with ``q_values``, or ``mu`` and ``sigma``) are accepted too.

Each sampler owns a seeded :class:`numpy.random.Generator`, so a fixed seed gives the same
actions; hyper-parameters that change over training (epsilon, temperature) are schedules
evaluated at ``step``. Strategies are also available by name, like ReAllY's
``action_sampling_type``: ``epsilon_greedy``, ``thompson`` / ``boltzmann``,
``continuous_normal_diagonal`` and ``greedy`` (see :func:`make_sampler`).

Only NumPy is used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from daedalus.errors import DaedalusError, did_you_mean

__all__ = [
    "ActionSampler",
    "Boltzmann",
    "ConstantSchedule",
    "DiagonalGaussian",
    "EpsilonGreedy",
    "ExponentialSchedule",
    "Greedy",
    "LinearSchedule",
    "SAMPLERS",
    "Schedule",
    "as_schedule",
    "greedy_actions",
    "make_sampler",
    "register_sampler",
]


# --------------------------------------------------------------------------- schedules


@runtime_checkable
class Schedule(Protocol):
    """A hyper-parameter as a function of the step (or episode) number."""

    def __call__(self, step: int) -> float:
        """The value at ``step`` (``step >= 0``)."""
        ...


@dataclass(frozen=True)
class ConstantSchedule:
    """Always ``value``."""

    value: float

    def __call__(self, step: int) -> float:
        """``value``, whatever the step."""
        return float(self.value)


@dataclass(frozen=True)
class LinearSchedule:
    """From ``start`` at step 0 to ``end`` at ``duration_steps``, then constant at ``end``."""

    start: float
    end: float
    duration_steps: int

    def __post_init__(self) -> None:
        if self.duration_steps < 1:
            raise ValueError(f"duration_steps must be >= 1, got {self.duration_steps}")

    def __call__(self, step: int) -> float:
        """``start + (end - start) * min(step / duration_steps, 1)``."""
        fraction = min(max(step, 0) / self.duration_steps, 1.0)
        return float(self.start + (self.end - self.start) * fraction)


@dataclass(frozen=True)
class ExponentialSchedule:
    """``start * decay ** step``, never below ``end`` (for ``start >= end``)."""

    start: float
    end: float
    decay: float

    def __post_init__(self) -> None:
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {self.decay}")

    def __call__(self, step: int) -> float:
        """``max(end, start * decay ** step)``."""
        return float(max(self.end, self.start * self.decay ** max(step, 0)))


def as_schedule(value: float | Schedule | Mapping[str, Any]) -> Schedule:
    """A schedule from a number (constant), a schedule, or a mapping as written in YAML.

    Mappings name the kind: ``{kind: linear, start: 1.0, end: 0.05, duration_steps: 1000}``,
    ``{kind: exponential, start: 1.0, end: 0.01, decay: 0.999}`` or
    ``{kind: constant, value: 0.1}``.
    """
    if isinstance(value, bool):
        raise TypeError(f"a schedule cannot be a boolean, got {value!r}")
    if isinstance(value, int | float):
        return ConstantSchedule(float(value))
    if isinstance(value, Mapping):
        kinds: dict[str, Callable[..., Schedule]] = {
            "constant": ConstantSchedule,
            "linear": LinearSchedule,
            "exponential": ExponentialSchedule,
        }
        args = dict(value)
        kind = str(args.pop("kind", "constant"))
        if kind not in kinds:
            raise DaedalusError(
                f"unknown schedule kind '{kind}'.{did_you_mean(kind, list(kinds))} "
                f"Use one of: {', '.join(kinds)}."
            )
        try:
            return kinds[kind](**args)
        except TypeError as exc:
            raise DaedalusError(f"schedule {dict(value)!r}: {exc}.") from None
    if callable(value):
        return value
    raise TypeError(f"cannot make a schedule from {value!r}")


# --------------------------------------------------------------------------- samplers


@runtime_checkable
class ActionSampler(Protocol):
    """Turns action values (discrete) or distribution parameters (continuous) into actions."""

    def select(self, values_or_params: Any, step: int = 0) -> Any:
        """Actions for one input or a batch (leading axes are batch axes)."""
        ...


def _generator(seed: int | None, rng: np.random.Generator | None) -> np.random.Generator:
    if rng is not None:
        return rng
    return np.random.default_rng(seed)


def _action_values(values: Any) -> np.ndarray:
    """Action values as a float array with the action axis last (ReAllY dicts accepted)."""
    if isinstance(values, Mapping):
        for key in ("q_values", "logits", "values"):
            if key in values:
                values = values[key]
                break
        else:
            raise DaedalusError(
                f"expected action values or a mapping with 'q_values', got keys {sorted(values)}."
            )
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        raise DaedalusError("action values need an action axis (last axis), got a scalar.")
    return array


def _unbatch(actions: np.ndarray) -> Any:
    """A 0-d result (one input) as a NumPy scalar, anything else unchanged."""
    return actions[()] if actions.ndim == 0 else actions


def greedy_actions(values: Any, rng: np.random.Generator | None = None) -> Any:
    """The argmax over the last axis; ties are broken uniformly at random when ``rng`` is given.

    Random tie-breaking matters for tables and networks initialised to equal values: the
    first-index argmax would always pick action 0 among equal values.
    """
    array = _action_values(values)
    if rng is None:
        return _unbatch(np.argmax(array, axis=-1))
    is_max = array == array.max(axis=-1, keepdims=True)
    # A uniform draw on the tied entries only: the largest draw picks one of them uniformly.
    return _unbatch(np.argmax(np.where(is_max, rng.random(array.shape), -1.0), axis=-1))


class Greedy:
    """The action with the highest value (ties broken at random with a seeded generator)."""

    def __init__(
        self,
        seed: int | None = None,
        rng: np.random.Generator | None = None,
        random_ties: bool = True,
    ) -> None:
        self.rng = _generator(seed, rng)
        self.random_ties = random_ties

    def select(self, values_or_params: Any, step: int = 0) -> Any:
        """``argmax`` over the last axis."""
        return greedy_actions(values_or_params, self.rng if self.random_ties else None)

    def probabilities(self, values: Any, step: int = 0) -> np.ndarray:
        """The action distribution: uniform over the tied maxima."""
        array = _action_values(values)
        is_max = (array == array.max(axis=-1, keepdims=True)).astype(np.float64)
        return is_max / is_max.sum(axis=-1, keepdims=True)


class EpsilonGreedy:
    """With probability ``epsilon(step)`` a uniformly random action, otherwise the greedy one.

    The random action is drawn from all actions (the greedy one included), so the greedy
    action has probability ``1 - epsilon + epsilon / n_actions``.
    """

    def __init__(
        self,
        epsilon: float | Schedule | Mapping[str, Any] = 0.1,
        seed: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.epsilon = as_schedule(epsilon)
        self.rng = _generator(seed, rng)

    def select(self, values_or_params: Any, step: int = 0) -> Any:
        """Epsilon-greedy actions for action values with the action axis last."""
        array = _action_values(values_or_params)
        epsilon = self.epsilon(step)
        batch_shape = array.shape[:-1]
        explore = self.rng.random(batch_shape) < epsilon
        random_actions = self.rng.integers(0, array.shape[-1], size=batch_shape)
        greedy = np.asarray(greedy_actions(array, self.rng))
        return _unbatch(np.where(explore, random_actions, greedy))

    def probabilities(self, values: Any, step: int = 0) -> np.ndarray:
        """The probability of each action at ``step`` (ties share the greedy mass)."""
        array = _action_values(values)
        epsilon = self.epsilon(step)
        greedy = Greedy().probabilities(array)
        return (1.0 - epsilon) * greedy + epsilon / array.shape[-1]


class Boltzmann:
    """Softmax (Boltzmann) sampling with a temperature; ReAllY calls it ``thompson``.

    ``p(a) = exp(q_a / T) / sum_b exp(q_b / T)``: low temperatures approach greedy, high
    ones approach uniform. ``temperature`` may be a schedule; it must stay positive.
    """

    def __init__(
        self,
        temperature: float | Schedule | Mapping[str, Any] = 1.0,
        seed: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.temperature = as_schedule(temperature)
        self.rng = _generator(seed, rng)

    def probabilities(self, values: Any, step: int = 0) -> np.ndarray:
        """Softmax of ``values / temperature(step)`` over the last axis (numerically stable)."""
        temperature = self.temperature(step)
        if not temperature > 0.0 or math.isinf(temperature):
            raise DaedalusError(
                "the Boltzmann temperature must be positive and finite, "
                f"got {temperature} at step {step}."
            )
        logits = _action_values(values) / temperature
        logits = logits - logits.max(axis=-1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=-1, keepdims=True)

    def select(self, values_or_params: Any, step: int = 0) -> Any:
        """One action per row, drawn from :meth:`probabilities` (inverse-CDF, vectorised)."""
        probs = self.probabilities(values_or_params, step)
        cumulative = np.cumsum(probs, axis=-1)
        draws = self.rng.random(probs.shape[:-1] + (1,)) * cumulative[..., -1:]
        actions = (cumulative <= draws).sum(axis=-1)
        return _unbatch(np.minimum(actions, probs.shape[-1] - 1))


class DiagonalGaussian:
    """Continuous actions ``mu + sigma * N(0, 1)`` per dimension, clipped to ``[low, high]``.

    ``select`` takes ``(mu, sigma)`` (a pair or a mapping with ``mu`` and ``sigma``, as ReAllY's
    continuous models output). ``sigma`` is a standard deviation (not a log), broadcast
    against ``mu``. ``scale`` (a number or schedule) multiplies sigma, e.g. to anneal
    exploration; ``scale=0`` gives the mean.
    """

    def __init__(
        self,
        low: Any = None,
        high: Any = None,
        seed: int | None = None,
        rng: np.random.Generator | None = None,
        scale: float | Schedule | Mapping[str, Any] = 1.0,
    ) -> None:
        self.low = None if low is None else np.asarray(low, dtype=np.float64)
        self.high = None if high is None else np.asarray(high, dtype=np.float64)
        self.scale = as_schedule(scale)
        self.rng = _generator(seed, rng)

    @classmethod
    def from_space(cls, space: Any, seed: int | None = None, **kwargs: Any) -> DiagonalGaussian:
        """Bounds taken from a Gymnasium ``Box`` action space."""
        return cls(low=space.low, high=space.high, seed=seed, **kwargs)

    def select(self, values_or_params: Any, step: int = 0) -> Any:
        """Sampled actions with the shape of ``mu`` (broadcast with ``sigma``)."""
        if isinstance(values_or_params, Mapping):
            try:
                mu, sigma = values_or_params["mu"], values_or_params["sigma"]
            except KeyError:
                raise DaedalusError(
                    "continuous sampling needs 'mu' and 'sigma', got keys "
                    f"{sorted(values_or_params)}."
                ) from None
        else:
            mu, sigma = values_or_params
        mu = np.asarray(mu, dtype=np.float64)
        sigma = np.asarray(sigma, dtype=np.float64)
        if np.any(sigma < 0):
            raise DaedalusError("sigma must be >= 0 (a standard deviation, not its log).")
        mu, sigma = np.broadcast_arrays(mu, sigma)
        actions = mu + self.scale(step) * sigma * self.rng.standard_normal(mu.shape)
        if self.low is not None or self.high is not None:
            actions = np.clip(actions, self.low, self.high)
        return actions


# --------------------------------------------------------------------------- by name


#: Sampler classes by name (ReAllY's ``action_sampling_type`` plus ``greedy``).
SAMPLERS: dict[str, Callable[..., ActionSampler]] = {
    "epsilon_greedy": EpsilonGreedy,
    "thompson": Boltzmann,
    "boltzmann": Boltzmann,
    "softmax": Boltzmann,
    "continuous_normal_diagonal": DiagonalGaussian,
    "greedy": Greedy,
}


def register_sampler(name: str, factory: Callable[..., ActionSampler]) -> None:
    """Make ``make_sampler(name, ...)`` build samplers with ``factory(**kwargs)``."""
    if not callable(factory):
        raise DaedalusError(f"register_sampler('{name}'): the factory must be callable.")
    SAMPLERS[name] = factory


def make_sampler(name: str, **kwargs: Any) -> ActionSampler:
    """Build a sampler by name, e.g. ``make_sampler("thompson", temperature=0.5, seed=0)``.

    Keyword arguments go to the sampler's constructor (``epsilon``, ``temperature``,
    ``low``/``high``, ``seed``, ``rng``). An unknown name lists the known ones.
    """
    factory = SAMPLERS.get(name)
    if factory is None:
        raise DaedalusError(
            f"unknown action sampling type '{name}'.{did_you_mean(name, list(SAMPLERS))} "
            f"Known: {', '.join(SAMPLERS)}."
        )
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise DaedalusError(f"action sampling type '{name}': {exc}.") from None
