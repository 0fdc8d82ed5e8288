"""ReAllY's ``SampleManager`` on Daedalus pieces: collect with a PyTorch model on Ray (or here), keep a
FIFO buffer, test the agent and plot training numbers.

For course code written against ReAllY (https://github.com/geronimocharlie/ReAllY)::

    manager = SampleManager(MyModel, "CartPole-v1", num_parallel=4, total_steps=400,
                            action_sampling_type="epsilon_greedy", epsilon=0.1,
                            model_kwargs={"num_actions": 2})
    manager.initialize_buffer(10_000, optim_keys=["state", "action", "reward", "state_new", "not_done"])
    agent = manager.get_agent()                   # a local copy: agent.model is your nn.Module
    for epoch in range(100):
        manager.store_in_buffer(manager.get_data())
        batch = manager.sample(64)                # dict of numpy arrays, drawn from the buffer
        ...                                       # your loss on agent.model, your optimizer
        manager.set_agent(agent.get_weights())    # the workers act with these from the next collection
    manager.test(500, test_episodes=10, evaluation_measure="time_and_reward", do_print=True)

What it is made of: the model is wrapped as a :class:`~daedalus.rollout.contract.Policy`
(:class:`ModelPolicy`: actions from :mod:`daedalus.sampling`, weights as named NumPy arrays, a
picklable ``copy_factory``), environments step in a
:class:`~daedalus.rollout.ray_source.RaySource` (``backend="ray"``, one env copy per Ray worker by
default) or a :class:`~daedalus.rollout.source.LocalSource` (``backend="local"``: ``num_parallel``
copies in this process), Monte-Carlo returns come from :func:`daedalus.returns.compute_mc_returns`,
files are safetensors (weights) and CSV/PNG (the aggregator). Nothing is ever unpickled.

Differences from ReAllY, on purpose:

- ``get_data`` counts **steps**, not episodes: ``ceil(total_steps / num_envs)`` steps of every env
  copy, episodes continuing from one call to the next (ReAllY's ``num_episodes`` mode is not
  offered). ``not_done`` is ``1 - terminated``: a time-limit cut keeps ``not_done = 1`` so a TD
  target bootstraps from ``state_new``, which is the **real** last observation of the episode.
  ``terminated`` and ``truncated`` are returned too.
- ``epsilon`` is the probability of a random action (as in ReAllY's code; default 0.95 like
  ReAllY, which is mostly random: lower it, or anneal it with :meth:`SampleManager.set_epsilon`).
  ``log_prob`` is the true log-probability of the action taken under the sampling rule (ReAllY's
  epsilon-greedy log-probs were swapped).
- ``test`` acts greedily (argmax / the mean ``mu``) unless ``deterministic=False`` and returns
  per-episode lengths (steps) and returns (sums of rewards).
- By default ``get_data`` waits for every worker (``remote_min_returns=None``; ReAllY waited for
  10 %); with fewer, it runs rounds until it has ``total_steps`` transitions.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from daedalus.errors import DaedalusError, did_you_mean
from daedalus.rollout.contract import DEFAULT_GROUP, ActOutput, Trajectory
from daedalus.sampling import Boltzmann, EpsilonGreedy, greedy_actions

if TYPE_CHECKING:
    import torch

__all__ = ["Agent", "FifoBuffer", "ModelPolicy", "SampleManager", "SmoothingAggregator", "SAMPLING_TYPES", "RETURN_KEYS"]

#: ReAllY's ``action_sampling_type`` names (and their misspellings) -> the one used here.
SAMPLING_TYPES = {
    "epsilon_greedy": "epsilon_greedy",
    "thompson": "thompson",
    "boltzmann": "thompson",
    "softmax": "thompson",
    "discrete_policy": "thompson",  # ReAllY's fork: sample the softmax of 'policy' logits (temperature 1)
    "continuous_normal_diagonal": "continuous_normal_diagonal",
    "continous_normal_diagonal": "continuous_normal_diagonal",  # ReAllY's README spelling
}
#: The optional keys of ``get_data`` (ReAllY's ``returns``).
RETURN_KEYS = ("value_estimate", "log_prob", "monte_carlo")
#: Keys every ``get_data`` result has.
DATA_KEYS = ("state", "action", "reward", "state_new", "not_done", "terminated", "truncated")
_DISCRETE_KEYS = ("q_values", "policy", "logits")
_VALUE_KEYS = ("value_estimate", "v_estimate")


# --------------------------------------------------------------------------- the policy


@dataclass(frozen=True)
class SamplingSettings:
    """How :class:`ModelPolicy` turns a model's output into actions (and what else it reports)."""

    #: ``epsilon_greedy``, ``thompson`` or ``continuous_normal_diagonal``.
    action_sampling_type: str
    #: Probability of a uniformly random action (epsilon-greedy).
    epsilon: float
    #: Softmax temperature (thompson).
    temperature: float
    #: Env action bounds (continuous): the sampled action is stored as drawn, clipped for the env.
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    #: Report ``log_probs`` / ``values`` in :class:`~daedalus.rollout.contract.ActOutput`.
    log_probs: bool = False
    values: bool = False


def _to_numpy(value: Any) -> np.ndarray:
    detach = getattr(value, "detach", None)
    if detach is not None:
        value = detach().cpu().numpy()
    return np.asarray(value)


def _pick(output: Mapping[str, Any], keys: Sequence[str], what: str) -> Any:
    for key in keys:
        if key in output:
            return output[key]
    raise DaedalusError(
        f"the model's output has no {what} (looked for {', '.join(repr(k) for k in keys)}; it has {sorted(output)}). "
        "A SampleManager model returns a dict like ReAllY's: {'q_values': ...}, {'policy': logits} or "
        "{'mu': ..., 'sigma': ...}, optionally with 'value_estimate'."
    )


def model_output(model: Any, obs: Any, grad: bool = False) -> dict[str, Any]:
    """``model(obs)`` on a float32 tensor of ``obs`` (no autograd unless ``grad``), checked to be a dict."""
    import torch

    tensor = obs if isinstance(obs, torch.Tensor) else torch.as_tensor(np.asarray(obs), dtype=torch.float32)
    if grad:
        output = model(tensor)
    else:
        with torch.no_grad():
            output = model(tensor)
    if not isinstance(output, Mapping):
        raise DaedalusError(
            f"the model returned {type(output).__name__}; a SampleManager model's forward returns a dict "
            "({'q_values': ...}, {'policy': logits} or {'mu': ..., 'sigma': ...}, optionally 'value_estimate')."
        )
    return dict(output)


class ModelPolicy:
    """A PyTorch model returning ReAllY's output dict, as a collection :class:`~daedalus.rollout.contract.Policy`.

    ``act`` runs one forward pass for all rows and samples with :mod:`daedalus.sampling`; weights
    travel as the model's ``state_dict`` in NumPy plus ``sampling/epsilon`` and
    ``sampling/temperature`` (so :meth:`SampleManager.set_epsilon` reaches Ray workers with the
    next weights). ``recipe`` is what :meth:`copy_factory` sends to remote workers: ``(model
    class, kwargs)``, or a CPU copy of a model instance.

    The random generator is seeded at the first ``act`` from ``seed`` (per Ray worker: see
    :meth:`copy_factory`) mixed with a checksum of the first observations, so copies that get the
    same seed still draw different numbers, reproducibly.
    """

    def __init__(self, model: Any, settings: SamplingSettings, seed: int | None = None, recipe: Any = None) -> None:
        self.model = model
        self.settings = settings
        self.seed = seed
        self.recipe = recipe
        self._rng: np.random.Generator | None = None

    # ------------------------------------------------------------------ acting

    def _generator(self, obs: np.ndarray) -> np.random.Generator:
        if self._rng is None:
            mix = zlib.crc32(np.ascontiguousarray(obs).tobytes())
            self._rng = np.random.default_rng(None if self.seed is None else [self.seed, mix])
        return self._rng

    def act(self, obs: np.ndarray, state: Any = None, deterministic: bool = False) -> ActOutput:
        """Actions for ``obs`` (``(rows, ...)``), with ``log_probs`` / ``values`` when the settings ask."""
        output = model_output(self.model, obs)
        settings = self.settings
        rows = len(obs)
        log_probs = None
        env_actions = None
        if settings.action_sampling_type == "continuous_normal_diagonal":
            mu = _to_numpy(_pick(output, ("mu", "mus"), "'mu'")).astype(np.float64).reshape(rows, -1)
            sigma = np.broadcast_to(_to_numpy(_pick(output, ("sigma", "sigmas"), "'sigma'")).astype(np.float64).reshape(rows, -1), mu.shape)
            if deterministic:
                raw = mu
            else:
                if np.any(sigma < 0):
                    raise DaedalusError("the model's 'sigma' must be >= 0 (a standard deviation, not its log).")
                raw = mu + sigma * self._generator(obs).standard_normal(mu.shape)
            if settings.log_probs:
                safe = np.maximum(sigma, 1e-12)
                log_probs = np.sum(-0.5 * ((raw - mu) / safe) ** 2 - np.log(safe) - 0.5 * math.log(2 * math.pi), axis=-1)
            actions = raw.astype(np.float32)
            if settings.low is not None or settings.high is not None:
                env_actions = np.clip(actions, settings.low, settings.high).astype(np.float32)
        else:
            values = _to_numpy(_pick(output, _DISCRETE_KEYS, "action values ('q_values' or 'policy' logits)")).astype(np.float64)
            values = values.reshape(rows, -1)
            sampler: EpsilonGreedy | Boltzmann
            if settings.action_sampling_type == "epsilon_greedy":
                sampler = EpsilonGreedy(settings.epsilon, rng=self._generator(obs))
            else:
                sampler = Boltzmann(settings.temperature, rng=self._generator(obs))
            if deterministic:
                actions = np.asarray(greedy_actions(values), dtype=np.int64)
            else:
                actions = np.asarray(sampler.select(values), dtype=np.int64)
            if settings.log_probs:
                probs = sampler.probabilities(values)
                log_probs = np.log(np.maximum(probs[np.arange(rows), actions], 1e-38))
        value_estimates = None
        if settings.values:
            value_estimates = _to_numpy(_pick(output, _VALUE_KEYS, "'value_estimate'")).astype(np.float32).reshape(rows)
        return ActOutput(
            actions=actions, env_actions=env_actions,
            log_probs=None if log_probs is None else log_probs.astype(np.float32), values=value_estimates, state=state,
        )

    # ------------------------------------------------------------------ weights

    def get_weights(self) -> dict[str, np.ndarray]:
        """The model's ``state_dict`` as NumPy arrays, plus ``sampling/epsilon`` and ``sampling/temperature``."""
        weights = {name: tensor.detach().cpu().numpy().copy() for name, tensor in self.model.state_dict().items()}
        weights["sampling/epsilon"] = np.asarray(self.settings.epsilon, dtype=np.float64)
        weights["sampling/temperature"] = np.asarray(self.settings.temperature, dtype=np.float64)
        return weights

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Load what :meth:`get_weights` gave (the ``sampling/*`` entries are optional)."""
        load_state(self.model, {k: v for k, v in weights.items() if not k.startswith("sampling/")})
        epsilon, temperature = weights.get("sampling/epsilon"), weights.get("sampling/temperature")
        self.settings = replace(
            self.settings,
            epsilon=self.settings.epsilon if epsilon is None else float(np.asarray(epsilon)),
            temperature=self.settings.temperature if temperature is None else float(np.asarray(temperature)),
        )

    def copy_factory(self, seed: int | None = None) -> Callable[..., ModelPolicy]:
        """A picklable ``recipe(worker_index)`` of a CPU copy of this policy (weights follow with :meth:`set_weights`)."""
        return partial(_policy_copy, self.recipe if self.recipe is not None else _cpu_copy(self.model), self.settings, seed)


def _cpu_copy(model: Any) -> Any:
    return copy.deepcopy(model).cpu()


def _policy_copy(recipe: Any, settings: SamplingSettings, seed: int | None, worker: int | None = None) -> ModelPolicy:
    """What a Ray worker calls (with its index): a fresh model from ``recipe`` (``(class, kwargs)`` or a module), wrapped."""
    if seed is not None and worker is not None:
        seed = seed + 7919 * (worker + 1)  # every worker samples its own actions
    if isinstance(recipe, tuple):
        model_class, kwargs = recipe
        model = model_class(**kwargs)
    else:
        model = recipe
    model.eval()
    return ModelPolicy(model, settings, seed)


def load_state(model: Any, weights: Mapping[str, Any] | Sequence[Any]) -> None:
    """Load named arrays or tensors (or a list in ``state_dict`` order, like Keras' ``get_weights``) into ``model``."""
    import torch

    names = list(model.state_dict())
    if not isinstance(weights, Mapping):
        items = list(weights)
        if len(items) != len(names):
            raise DaedalusError(f"set_weights: got {len(items)} arrays, the model has {len(names)} ({', '.join(names)}).")
        weights = dict(zip(names, items, strict=True))
    missing = [n for n in names if n not in weights]
    unknown = [n for n in weights if n not in names]
    if missing or unknown:
        raise DaedalusError(
            f"set_weights: the weights do not match the model (missing {missing}, unknown {unknown}). "
            "Pass agent.get_weights() or model.state_dict() of the same model class."
        )
    state = {}
    for name, value in weights.items():
        if isinstance(value, torch.Tensor):
            state[name] = value.detach()
        else:  # a copy: arrays from Ray's object store are read-only
            state[name] = torch.from_numpy(np.array(value, copy=True))
    model.load_state_dict(state)


# --------------------------------------------------------------------------- ReAllY's Agent


class Agent:
    """A local copy of the agent, like ReAllY's ``Agent``: ``.model`` is the PyTorch module.

    ``act`` samples as the workers do; ``max_q`` and ``q_val`` return **tensors with autograd**
    (for losses); ``get_weights`` / ``set_weights`` exchange the ``state_dict`` as NumPy arrays.
    """

    def __init__(self, model: Any, settings: SamplingSettings, seed: int | None = None) -> None:
        self.model = model
        self.policy = ModelPolicy(model, settings, seed)

    def __call__(self, state: Any) -> dict[str, Any]:
        """The model's output dict for ``state`` (with autograd)."""
        return model_output(self.model, state, grad=True)

    def act(self, state: Any, deterministic: bool = False) -> np.ndarray:
        """Actions for a batch of states (sampled with the manager's sampling settings)."""
        return self.policy.act(np.asarray(state), deterministic=deterministic).to_env()

    def act_experience(self, state: Any) -> dict[str, np.ndarray]:
        """``action`` and, where the model gives them, ``log_prob`` and ``value_estimate`` (NumPy)."""
        out = ModelPolicy(self.model, replace(self.policy.settings, log_probs=True), self.policy.seed).act(np.asarray(state))
        result = {"action": out.actions, "log_prob": out.log_probs}
        output = model_output(self.model, state)
        for key in _VALUE_KEYS:
            if key in output:
                result["value_estimate"] = _to_numpy(output[key]).reshape(len(out.actions))
                break
        return {k: v for k, v in result.items() if v is not None}

    def q_val(self, state: Any, actions: Any = None) -> torch.Tensor:
        """``Q(state, action)`` for each row (all action values when ``actions`` is None)."""
        import torch

        q_values = _pick(self(state), ("q_values",), "'q_values'")
        if actions is None:
            return q_values
        index = torch.as_tensor(np.asarray(actions), dtype=torch.int64).reshape(-1, 1)
        return q_values.gather(-1, index).squeeze(-1)

    def max_q(self, state: Any) -> torch.Tensor:
        """``max_a Q(state, a)`` for each row."""
        return self.q_val(state).max(dim=-1).values

    def get_weights(self) -> dict[str, np.ndarray]:
        """The model's ``state_dict`` as NumPy arrays."""
        return {name: tensor.detach().cpu().numpy().copy() for name, tensor in self.model.state_dict().items()}

    def set_weights(self, weights: Mapping[str, Any] | Sequence[Any]) -> None:
        """Load named arrays / tensors (or a list in ``state_dict`` order)."""
        load_state(self.model, weights)


# --------------------------------------------------------------------------- the buffer


class FifoBuffer:
    """A preallocated FIFO ring over named arrays (ReAllY's buffer): the oldest entries go first.

    Arrays are allocated at the first :meth:`put` from the shapes and dtypes of the data.
    :meth:`sample` draws uniformly **with replacement** (as ReAllY's ``random.choices``).
    """

    def __init__(self, size: int, keys: Sequence[str], seed: int | None = None) -> None:
        if size < 1:
            raise DaedalusError(f"the buffer size must be >= 1, got {size}.")
        if not keys:
            raise DaedalusError("the buffer needs at least one key (optim_keys).")
        self.size = int(size)
        self.keys = list(keys)
        self.rng = np.random.default_rng(seed)
        self.arrays: dict[str, np.ndarray] = {}
        #: Next slot to write; entries ``count`` in all.
        self.pos = 0
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def put(self, data: Mapping[str, Any]) -> None:
        """Append the rows of ``data`` (every buffer key; extra keys are ignored), dropping the oldest on overflow."""
        missing = [k for k in self.keys if k not in data]
        if missing:
            hint = "".join(did_you_mean(k, list(data)) for k in missing)
            raise DaedalusError(f"store_in_buffer: the data has no {missing} (it has {sorted(data)}).{hint}")
        columns = {k: _to_numpy(data[k]) for k in self.keys}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise DaedalusError(f"store_in_buffer: the keys have different lengths {({k: len(v) for k, v in columns.items()})}.")
        rows = lengths.pop()
        if not self.arrays:
            self.arrays = {k: np.zeros((self.size, *v.shape[1:]), dtype=v.dtype) for k, v in columns.items()}
        if rows > self.size:  # only the newest `size` rows survive
            columns = {k: v[-self.size:] for k, v in columns.items()}
            rows = self.size
        slots = (self.pos + np.arange(rows)) % self.size
        for key, value in columns.items():
            self.arrays[key][slots] = value
        self.pos = int((self.pos + rows) % self.size)
        self.count = min(self.size, self.count + rows)

    def data(self) -> dict[str, np.ndarray]:
        """Everything stored, oldest first (copies)."""
        order = (self.pos - self.count + np.arange(self.count)) % self.size
        return {k: v[order] for k, v in self.arrays.items()}

    def sample(self, n: int) -> dict[str, np.ndarray]:
        """``n`` rows drawn uniformly with replacement, the same rows for every key."""
        if self.count == 0:
            raise DaedalusError("sample(): the buffer is empty; store_in_buffer(manager.get_data()) first.")
        slots = (self.pos - self.count + self.rng.integers(0, self.count, size=n)) % self.size
        return {k: v[slots] for k, v in self.arrays.items()}


# --------------------------------------------------------------------------- the aggregator


class SmoothingAggregator:
    """ReAllY's aggregator: keeps every value, and every ``saving_after`` updates writes the curves.

    Each update stores one number per key (a list or array is averaged first). Files under
    ``path``: ``progress_<update>.png`` (one panel per key: the raw values, faint, and their
    moving average over ``smoothing_window`` updates) and ``aggregator.csv`` (one row per update,
    the raw values; rewritten whole each time).
    """

    def __init__(self, path: str | Path, saving_after: int = 10, keys: Sequence[str] = ("loss",), smoothing_window: int = 5) -> None:
        if saving_after < 1 or smoothing_window < 1:
            raise DaedalusError("saving_after and the smoothing window must be >= 1.")
        if not keys:
            raise DaedalusError("the aggregator needs at least one key (aggregator_keys).")
        self.path = Path(path)
        self.saving_after = int(saving_after)
        self.keys = list(keys)
        self.smoothing_window = int(smoothing_window)
        self.values: dict[str, list[float]] = {k: [] for k in self.keys}
        self.updates = 0
        self.written: list[Path] = []

    def update(self, **values: Any) -> None:
        """Add one value per key (a list or array is averaged); a key not given, or given None, gets NaN
        (left out of the plot and the moving average)."""
        unknown = [k for k in values if k not in self.values]
        if unknown:
            hint = "".join(did_you_mean(k, self.keys) for k in unknown)
            raise DaedalusError(f"update_aggregator: unknown keys {unknown}; the aggregator tracks {self.keys}.{hint}")
        self.updates += 1
        for key in self.keys:
            value = values.get(key)
            self.values[key].append(float("nan") if value is None else float(np.mean(_to_numpy(value))))
        if self.updates % self.saving_after == 0:
            self.save()

    def smoothed(self, key: str) -> np.ndarray:
        """The moving average of ``key`` over the last ``smoothing_window`` updates (fewer at the start; NaNs skipped)."""
        raw = np.asarray(self.values[key], dtype=np.float64)
        out = np.empty_like(raw)
        for i in range(len(raw)):
            window = raw[max(0, i + 1 - self.smoothing_window): i + 1]
            finite = window[np.isfinite(window)]
            out[i] = finite.mean() if len(finite) else np.nan
        return out

    def save(self) -> list[Path]:
        """Write ``aggregator.csv`` and ``progress_<updates>.png`` now; returns their paths."""
        from daedalus.runs.io import atomic_write_bytes, atomic_write_text

        self.path.mkdir(parents=True, exist_ok=True)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["update", *self.keys])
        for i in range(self.updates):
            writer.writerow([i + 1, *(repr(self.values[k][i]) for k in self.keys)])
        csv_path = self.path / "aggregator.csv"
        atomic_write_text(csv_path, text.getvalue())

        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        figure = Figure(figsize=(7, 2.4 * len(self.keys)))
        axes = figure.subplots(len(self.keys), 1, squeeze=False)[:, 0]
        steps = np.arange(1, self.updates + 1)
        for ax, key in zip(axes, self.keys, strict=True):
            raw = np.asarray(self.values[key], dtype=np.float64)
            given = np.isfinite(raw)  # updates without this key are left out
            ax.plot(steps[given], raw[given], color="tab:blue", alpha=0.3, linewidth=1, marker=".", label="raw")
            ax.plot(steps[given], self.smoothed(key)[given], color="tab:blue", linewidth=2, label=f"mean of {self.smoothing_window}")
            ax.set_ylabel(key)
            ax.grid(alpha=0.3)
        axes[0].legend(loc="best", fontsize="small")
        axes[-1].set_xlabel("update")
        figure.suptitle(f"training progress after {self.updates} updates")
        figure.tight_layout()
        png = io.BytesIO()
        figure.savefig(png, format="png", dpi=90)
        png_path = self.path / f"progress_{self.updates}.png"
        atomic_write_bytes(png_path, png.getvalue())
        self.written += [csv_path, png_path]
        return [csv_path, png_path]


# --------------------------------------------------------------------------- envs


def _make_gym_env(env_id: str, env_kwargs: dict[str, Any], seed: int | None = None) -> Any:
    """``gym.make(env_id, **env_kwargs)`` (seeded by the source's reset)."""
    import gymnasium as gym

    return gym.make(env_id, **env_kwargs)


def _construct_env(env_class: Any, env_kwargs: dict[str, Any], seed: int | None = None) -> Any:
    """``env_class(**env_kwargs)``: ReAllY's custom environment objects."""
    return env_class(**env_kwargs)


def _call_env(make_env: Callable[..., Any], env_kwargs: dict[str, Any], seed: int | None = None) -> Any:
    """``make_env(seed, **env_kwargs)``."""
    return make_env(seed, **env_kwargs)


def _same(value: Any) -> Any:
    return value


# --------------------------------------------------------------------------- the manager

#: ReAllY keyword arguments accepted under another name here.
_ALIASES = {"actin_sampling_type": "action_sampling_type", "env_config": "env_kwargs"}
#: ReAllY keyword arguments that have no meaning here (accepted and ignored, documented).
_IGNORED = ("input_shape",)


class SampleManager:
    """ReAllY's ``SampleManager`` (see the module docstring and docs/coming-from-really.md).

    Args:
        model: a PyTorch ``nn.Module`` class (built with ``model_kwargs``) or instance; its forward
            takes a float32 batch of observations and returns a dict: ``{"q_values": ...}``,
            ``{"policy": logits}`` or ``{"mu": ..., "sigma": ...}``, optionally ``"value_estimate"``.
        environment: a Gymnasium id, a custom env class (built with ``env_kwargs``) or a picklable
            ``make_env(seed, **env_kwargs)`` function.
        num_parallel: Ray workers (``backend="ray"``) or env copies (``backend="local"``).
        total_steps: transitions per :meth:`get_data` (about: rounded up to whole steps of every copy).
        returns: extra keys of :meth:`get_data`: ``value_estimate``, ``log_prob``, ``monte_carlo``.
        action_sampling_type: ``epsilon_greedy``, ``thompson`` (softmax of ``q_values`` or
            ``policy`` over ``temperature``) or ``continuous_normal_diagonal`` (also ReAllY's
            ``continous_normal_diagonal`` and ``discrete_policy``).
        model_kwargs / env_kwargs: constructor arguments (``env_config`` is accepted too).
        weights: initial weights (as :meth:`Agent.get_weights` gives).
        gamma: discount of the Monte-Carlo returns.
        epsilon: probability of a random action (ReAllY's default 0.95).
        temperature: softmax temperature of ``thompson``.
        seed: seeds the envs (copy ``i`` with ``seed + i``), the samplers and the buffer.
        backend: ``"ray"`` (ReAllY's runners) or ``"local"`` (this process).
        ray_address: the Ray cluster to join (else ``RAY_ADDRESS``, an already initialized Ray, or a
            local Ray started here and stopped by :meth:`close`).
        envs_per_worker: env copies per Ray worker (default 1).
        remote_min_returns / remote_time_out: wait per round for this many workers / seconds.
        cpus_per_worker: CPUs Ray reserves per worker (fractions allowed).
    """

    def __init__(
        self,
        model: Any,
        environment: str | Callable[..., Any],
        num_parallel: int,
        total_steps: int,
        returns: Sequence[str] = (),
        action_sampling_type: str = "epsilon_greedy",
        model_kwargs: Mapping[str, Any] | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        weights: Mapping[str, Any] | Sequence[Any] | None = None,
        gamma: float = 0.99,
        epsilon: float = 0.95,
        temperature: float = 1.0,
        seed: int | None = 0,
        backend: str = "ray",
        ray_address: str | None = None,
        envs_per_worker: int | None = None,
        remote_min_returns: int | None = None,
        remote_time_out: float | None = None,
        cpus_per_worker: float = 1.0,
        **really_kwargs: Any,
    ) -> None:
        for old, new in _ALIASES.items():
            if old in really_kwargs:
                value = really_kwargs.pop(old)
                if new == "action_sampling_type":
                    action_sampling_type = value
                elif env_kwargs is None:
                    env_kwargs = value
        for name in _IGNORED:
            really_kwargs.pop(name, None)
        if "num_episodes" in really_kwargs or "num_steps" in really_kwargs:
            raise DaedalusError(
                "SampleManager counts steps, not episodes: num_episodes / num_steps per runner are not supported. "
                "Set total_steps (transitions per get_data) instead; episodes continue from one get_data to the next."
            )
        if really_kwargs:
            known = [*_signature_names(), *_ALIASES, *_IGNORED]
            hint = "".join(did_you_mean(k, known) for k in really_kwargs)
            raise DaedalusError(f"SampleManager: unknown arguments {sorted(really_kwargs)}.{hint}")
        canonical = SAMPLING_TYPES.get(action_sampling_type)
        if canonical is None:
            raise DaedalusError(
                f"unknown action_sampling_type '{action_sampling_type}'.{did_you_mean(action_sampling_type, list(SAMPLING_TYPES))} "
                "Use 'epsilon_greedy', 'thompson' or 'continuous_normal_diagonal'."
            )
        bad = [r for r in returns if r not in RETURN_KEYS]
        if bad:
            raise DaedalusError(f"unknown returns {bad}; supported: {', '.join(RETURN_KEYS)}.{''.join(did_you_mean(b, RETURN_KEYS) for b in bad)}")
        if num_parallel < 1 or total_steps < 1:
            raise DaedalusError(f"num_parallel and total_steps must be >= 1, got {num_parallel} and {total_steps}.")
        if backend not in ("ray", "local"):
            raise DaedalusError(f"unknown backend '{backend}': use 'ray' (remote workers, as in ReAllY) or 'local' (this process).")
        if canonical == "epsilon_greedy" and not 0.0 <= epsilon <= 1.0:
            raise DaedalusError(f"epsilon is a probability (of a random action), got {epsilon}.")
        if canonical == "thompson" and not temperature > 0:
            raise DaedalusError(f"temperature must be > 0, got {temperature}.")

        self.num_parallel = int(num_parallel)
        self.total_steps = int(total_steps)
        self.returns = list(returns)
        self.gamma = float(gamma)
        self.seed = seed
        self.backend = backend
        self.env_kwargs = dict(env_kwargs or {})
        self.model_kwargs = dict(model_kwargs or {})
        self.make_env, self.env_id = self._env_maker(environment)
        self._gym_id = isinstance(environment, str)

        probe = self.make_env(seed)
        try:
            self.observation_space, self.action_space = probe.observation_space, probe.action_space
            first_obs, _ = probe.reset(seed=seed)
        finally:
            probe.close()
        discrete = hasattr(self.action_space, "n")
        if discrete == (canonical == "continuous_normal_diagonal"):
            raise DaedalusError(
                f"action_sampling_type '{action_sampling_type}' does not fit the action space {self.action_space}: "
                "use 'epsilon_greedy' or 'thompson' for discrete actions, 'continuous_normal_diagonal' for a Box."
            )

        if isinstance(model, type):
            model_instance = model(**self.model_kwargs)
            recipe: Any = (model, dict(self.model_kwargs))
        else:
            if self.model_kwargs:
                raise DaedalusError("model_kwargs are for a model class; this model is already built (pass its class, or no kwargs).")
            model_instance, recipe = model, None
        model_instance = model_instance.cpu()
        # A first call materializes lazy modules and checks the output early.
        model_output(model_instance, np.asarray(first_obs, dtype=np.float32)[None])
        self._settings = SamplingSettings(
            canonical, float(epsilon), float(temperature),
            low=None if discrete else np.asarray(self.action_space.low, dtype=np.float32),
            high=None if discrete else np.asarray(self.action_space.high, dtype=np.float32),
            log_probs="log_prob" in self.returns, values="value_estimate" in self.returns,
        )
        self._model_class = model if isinstance(model, type) else type(model)
        self._policy = ModelPolicy(model_instance, self._settings, seed, recipe)
        if weights is not None:
            load_state(model_instance, weights)
        self._has_value = any(k in model_output(model_instance, np.asarray(first_obs, dtype=np.float32)[None]) for k in _VALUE_KEYS)
        self._version = 0
        self._dirty = False
        self.steps_collected = 0
        self._episodes_tested = 0
        self.buffer: FifoBuffer | None = None
        self.aggregator: SmoothingAggregator | None = None
        self._source: Any = None
        self._connection: Any = None  # the Ray connection (a local Ray is stopped by close())
        self._ray_options: dict[str, Any] = dict(
            address=ray_address, envs_per_worker=envs_per_worker, min_returns=remote_min_returns,
            timeout_s=remote_time_out, cpus_per_worker=cpus_per_worker,
        )

    # ------------------------------------------------------------------ set-up

    def _env_maker(self, environment: Any) -> tuple[Callable[[int | None], Any], str]:
        if isinstance(environment, str):
            return partial(_make_gym_env, environment, self.env_kwargs), environment
        if isinstance(environment, type):
            return partial(_construct_env, environment, self.env_kwargs), environment.__name__
        if callable(environment):
            return partial(_call_env, environment, self.env_kwargs), getattr(environment, "__name__", "custom")
        raise DaedalusError(
            f"environment must be a Gymnasium id, an env class or a make_env(seed) function, got {type(environment).__name__}. "
            "A built env object cannot be copied to workers."
        )

    @property
    def source(self) -> Any:
        """The rollout source (built at the first collection): a ``RaySource`` or a ``LocalSource``."""
        if self._source is None:
            if self.backend == "ray":
                from daedalus.rollout.ray_source import RayOptions, RaySource

                self._join_ray()
                options = RayOptions(num_workers=self.num_parallel, **self._ray_options)
                per_worker = options.envs_per_worker or 1
                recipe = partial(_same, self.make_env)
                build = partial(_worker_builder, recipe, per_worker, self.env_id)
                self._source = RaySource(build, per_worker, options, self.make_env, self.seed, spaces=(self.observation_space, self.action_space))
            else:
                from daedalus.rollout.source import local_source

                self._source = local_source(self.make_env, self.num_parallel, self.env_id, {}, "sync", self.seed)
                self._source.reset(seed=self.seed)
        return self._source

    def _join_ray(self) -> None:
        """Join ``ray_address`` / ``RAY_ADDRESS`` / this process's Ray, else start a local Ray that :meth:`close` stops
        (:func:`daedalus.rollout.ray_source.connect`)."""
        from daedalus.rollout.ray_source import connect

        if self._connection is None:
            self._connection = connect(self._ray_options["address"])

    @property
    def num_envs(self) -> int:
        """Env copies that collect (``num_parallel * envs_per_worker`` on Ray)."""
        per_worker = self._ray_options["envs_per_worker"] if self.backend == "ray" else None
        return self.num_parallel * int(per_worker or 1)

    # ------------------------------------------------------------------ collecting

    def get_data(self, total_steps: int | None = None, do_print: bool = False) -> dict[str, np.ndarray]:
        """About ``total_steps`` (default: the manager's) fresh transitions with the current agent.

        Every env copy takes ``ceil(total_steps / num_envs)`` steps (so ``num_envs * that`` rows
        when every worker answers); rows are flattened copy by copy, each copy's steps in time
        order. Keys: ``state``, ``action``, ``reward``, ``state_new`` (the real last observation
        where an episode ended), ``not_done`` (``1 - terminated``, float32), ``terminated``,
        ``truncated``, plus the requested ``returns``. ``monte_carlo`` is the discounted
        return-to-go within each episode, computed per copy
        (:func:`daedalus.returns.compute_mc_returns`): 0 after a termination; where an episode was
        cut (time limit, or the end of this rollout) it is bootstrapped with the model's
        ``value_estimate`` of ``state_new`` when the model has one, else with 0 (the partial sum).
        """
        wanted = self.total_steps if total_steps is None else int(total_steps)
        if wanted < 1:
            raise DaedalusError(f"total_steps must be >= 1, got {wanted}.")
        num_steps = math.ceil(wanted / self.num_envs)
        if self._dirty:  # one new policy version per collection, however many changes came before it
            self._version += 1
            self._dirty = False
        parts: list[dict[str, np.ndarray]] = []
        collected = 0
        while collected < wanted:
            trajectory = self.source.sample({DEFAULT_GROUP: self._policy}, num_steps, self._version)[DEFAULT_GROUP]
            part = self._flatten(trajectory)
            parts.append(part)
            collected += len(part["reward"])
            if do_print:
                print(f"collected {len(part['reward'])} transitions from {trajectory.num_rows} env copies")
        self.steps_collected += collected
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}

    def _flatten(self, trajectory: Trajectory) -> dict[str, np.ndarray]:
        """(steps, rows, ...) arrays -> (rows * steps, ...), copy-major; invalid steps dropped."""

        def flat(array: np.ndarray) -> np.ndarray:
            array = np.asarray(array)
            return np.swapaxes(array, 0, 1).reshape(-1, *array.shape[2:])

        terminated = np.asarray(trajectory.terminated, dtype=bool)
        data = {
            "state": flat(trajectory.obs),
            "action": flat(trajectory.actions),
            "reward": flat(trajectory.rewards).astype(np.float32),
            "state_new": flat(trajectory.next_obs),
            "not_done": flat(~terminated).astype(np.float32),
            "terminated": flat(terminated),
            "truncated": flat(trajectory.truncated).astype(bool),
        }
        if "value_estimate" in self.returns:
            data["value_estimate"] = flat(trajectory.extras["values"])
        if "log_prob" in self.returns:
            data["log_prob"] = flat(trajectory.extras["log_probs"])
        if "monte_carlo" in self.returns:
            data["monte_carlo"] = flat(self._monte_carlo(trajectory))
        valid = flat(trajectory.valid).astype(bool)
        if not valid.all():
            data = {k: v[valid] for k, v in data.items()}
        return data

    def _monte_carlo(self, trajectory: Trajectory) -> np.ndarray:
        from daedalus.returns import compute_mc_returns

        terminated = np.asarray(trajectory.terminated, dtype=bool)
        truncated = np.asarray(trajectory.truncated, dtype=bool)
        next_values = np.zeros(terminated.shape, dtype=np.float32)
        if self._has_value:
            cut = truncated & ~terminated
            cut[-1] |= ~terminated[-1]  # the rollout's end cuts every running episode
            if cut.any():
                output = model_output(self._policy.model, trajectory.next_obs[cut])
                next_values[cut] = _to_numpy(_pick(output, _VALUE_KEYS, "'value_estimate'")).reshape(-1)
        return compute_mc_returns(trajectory.rewards, next_values, terminated, truncated, self.gamma)

    # ------------------------------------------------------------------ buffer

    def initialize_buffer(self, size: int, optim_keys: Sequence[str] = ("state", "action", "reward", "state_new", "not_done")) -> None:
        """A FIFO buffer of ``size`` transitions over ``optim_keys`` (replaces any earlier one)."""
        self.buffer = FifoBuffer(size, optim_keys, seed=None if self.seed is None else self.seed + 1)

    #: ReAllY's spelling.
    initilize_buffer = initialize_buffer

    def store_in_buffer(self, data: Mapping[str, Any]) -> None:
        """Append ``data`` (e.g. :meth:`get_data`'s result); the oldest transitions go first when full."""
        if self.buffer is None:
            raise DaedalusError("store_in_buffer(): call manager.initialize_buffer(size, optim_keys) first.")
        self.buffer.put(data)

    def sample(self, sample_size: int, from_buffer: bool = True) -> dict[str, np.ndarray]:
        """``sample_size`` transitions drawn uniformly from the buffer, or (``from_buffer=False``) fresh ones."""
        if not from_buffer:
            return self.get_data(total_steps=sample_size)
        if self.buffer is None:
            raise DaedalusError("sample(): call manager.initialize_buffer(size, optim_keys) first, or pass from_buffer=False.")
        return self.buffer.sample(sample_size)

    # ------------------------------------------------------------------ the agent

    def get_agent(self, test: bool = False) -> Agent:
        """A local copy of the current agent (``agent.model`` is a copy of the manager's model)."""
        return Agent(_cpu_copy(self._policy.model), self._settings, None if self.seed is None else self.seed + 2)

    def set_agent(self, weights: Mapping[str, Any] | Sequence[Any]) -> None:
        """New weights for collection (``agent.get_weights()`` or ``model.state_dict()``); workers get them with the next collection."""
        load_state(self._policy.model, weights)
        self._dirty = True

    def _set_sampling(self, settings: SamplingSettings) -> None:
        self._settings = settings
        self._policy.settings = settings
        self._dirty = True

    def set_epsilon(self, epsilon: float) -> None:
        """A new epsilon for epsilon-greedy collection (from the next collection on)."""
        if not 0.0 <= epsilon <= 1.0:
            raise DaedalusError(f"epsilon is a probability (of a random action), got {epsilon}.")
        self._set_sampling(replace(self._settings, epsilon=float(epsilon)))

    def set_temperature(self, temperature: float) -> None:
        """A new temperature for thompson collection (from the next collection on)."""
        if not temperature > 0:
            raise DaedalusError(f"temperature must be > 0, got {temperature}.")
        self._set_sampling(replace(self._settings, temperature=float(temperature)))

    # ------------------------------------------------------------------ files

    def save_model(self, path: str | Path, epoch: int, model_name: str = "model") -> Path:
        """Write the current weights to ``path/<model_name>_<epoch>.safetensors``; returns the file."""
        from safetensors.torch import save as save_tensors

        from daedalus.runs.io import atomic_write_bytes

        folder = Path(path)
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in self._policy.model.state_dict().items()}
        file = folder / f"{model_name}_{int(epoch)}.safetensors"
        atomic_write_bytes(file, save_tensors(state, metadata={"epoch": str(int(epoch)), "model": self._model_class.__name__}))
        return file

    def load_model(self, path: str | Path, model_name: str | None = None) -> Agent:
        """Load a ``.safetensors`` file, or the highest epoch in folder ``path`` (of ``model_name``); returns the agent.

        The weights become the collection weights (as :meth:`set_agent`).
        """
        from safetensors.torch import load_file

        target = Path(path)
        if target.is_dir():
            pattern = re.compile(rf"^{re.escape(model_name) if model_name else '.+'}_(\d+)\.safetensors$")
            found = [(int(m.group(1)), f.stat().st_mtime, f) for f in target.iterdir() if (m := pattern.match(f.name))]
            if not found:
                raise DaedalusError(f"no saved model (<name>_<epoch>.safetensors) in {target}; save_model(path, epoch) writes them.")
            target = max(found, key=lambda item: (item[0], item[1]))[2]
        elif not target.is_file():
            raise DaedalusError(f"load_model: {target} does not exist.")
        self.set_agent(load_file(str(target)))
        return self.get_agent()

    # ------------------------------------------------------------------ testing

    def test(
        self,
        max_steps: int,
        test_episodes: int = 100,
        evaluation_measure: str = "time",
        render: bool = False,
        do_print: bool = False,
        deterministic: bool = True,
    ) -> Any:
        """Play ``test_episodes`` episodes of at most ``max_steps`` steps here, with the current agent.

        Returns per-episode lengths (``"time"``), returns (``"reward"``), or both as a pair
        (``"time_and_reward"``). Greedy actions unless ``deterministic=False``; episode ``i`` is
        reset with ``seed + 10_000 + k``, ``k`` counting every episode this manager tested so far
        (each call plays new, reproducible episodes). ``render`` shows a window
        (``render_mode="human"``, Gymnasium ids only; one env copy).
        """
        from daedalus.rollout.source import play_episodes

        if evaluation_measure not in ("time", "reward", "time_and_reward"):
            raise DaedalusError(
                f"unknown evaluation_measure '{evaluation_measure}': use 'time', 'reward' or 'time_and_reward'."
                f"{did_you_mean(evaluation_measure, ['time', 'reward', 'time_and_reward'])}"
            )
        base = None if self.seed is None else self.seed + 10_000 + self._episodes_tested
        self._episodes_tested += test_episodes
        if render and self._gym_id:
            envs = [_make_gym_env(self.env_id, {**self.env_kwargs, "render_mode": "human"})]
        else:
            envs = [self.make_env(None) for _ in range(min(test_episodes, 10))]
        policy = ModelPolicy(self._policy.model, self._settings, base)
        try:
            stats = play_episodes(envs, policy, test_episodes, deterministic, base, max_steps)
        finally:
            for env in envs:
                env.close()
        if do_print:
            if evaluation_measure in ("time", "time_and_reward"):
                print(f"Episodes finished after a mean of {np.mean(stats.lengths):.2f} timesteps")
            if evaluation_measure in ("reward", "time_and_reward"):
                print(f"Episodes finished after a mean of {np.mean(stats.returns):.2f} accumulated reward")
        if evaluation_measure == "time":
            return stats.lengths
        if evaluation_measure == "reward":
            return stats.returns
        return stats.lengths, stats.returns

    # ------------------------------------------------------------------ the aggregator

    def initialize_aggregator(
        self, path: str | Path, saving_after: int = 10, aggregator_keys: Sequence[str] = ("loss",), max_size: int = 5
    ) -> SmoothingAggregator:
        """Track ``aggregator_keys``; every ``saving_after`` updates, write curves (moving average over ``max_size``) and a CSV under ``path``."""
        self.aggregator = SmoothingAggregator(path, saving_after, aggregator_keys, smoothing_window=max_size)
        return self.aggregator

    def update_aggregator(self, **kwargs: Any) -> None:
        """One value per key (lists and arrays are averaged), e.g. ``update_aggregator(loss=losses, time_steps=steps)``."""
        if self.aggregator is None:
            raise DaedalusError("update_aggregator(): call manager.initialize_aggregator(path, saving_after, aggregator_keys) first.")
        self.aggregator.update(**kwargs)

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Stop the workers and env copies (and a local Ray this manager started; a joined cluster keeps running)."""
        if self._source is not None:
            self._source.close()
            self._source = None
        if self._connection is not None:
            from daedalus.rollout.ray_source import disconnect

            disconnect(self._connection)
            self._connection = None

    def __enter__(self) -> SampleManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _worker_builder(recipe: Callable[[], Any], per_worker: int, env_id: str, first_copy: int) -> Callable[[Any], Any]:
    """``RaySource``'s ``build_source(first_copy)``: a worker's ``per_worker`` sync-vectorized copies."""
    from daedalus.rollout.ray_source import worker_source

    return partial(worker_source, recipe, per_worker, env_id, {}, "sync")


def _signature_names() -> list[str]:
    import inspect

    return [name for name in inspect.signature(SampleManager.__init__).parameters if name not in ("self", "really_kwargs")]
