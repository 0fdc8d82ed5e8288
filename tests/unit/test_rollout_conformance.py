"""The rollout conformance suite: what every :class:`~daedalus.rollout.contract.RolloutSource` must do.

Every test takes the ``source_factory`` fixture, parametrized by source kind; each kind gives a
factory ``(make_env, num_envs, seed, obs_transform=None) -> source`` and closes every source it
built when the test ends. Today's kinds:

- ``serial``: :class:`LocalSource` over a :class:`SerialWorker` on a sync vector env (``SAME_STEP``);
- ``native``: :class:`LocalSource` over a :class:`SerialWorker` on Gymnasium's native vector env
  (``make_vec_env(..., mode="native")``, ``NEXT_STEP`` autoreset);
- ``subprocess``: :class:`LocalSource` over a :class:`SubprocessWorker` (sync vector env in a child);
- ``ray``: :class:`~daedalus.rollout.ray_source.RaySource` on the session's real Ray cluster (the
  ``ray_cluster`` fixture): 2 workers when ``num_envs`` is even, else 1, so rows from several
  workers are laid side by side. It is rollout-level only (no ``step``), its policies act in the
  workers (copies: what they record stays there) and it prepares observations with the policy's
  ``prepare`` instead of an ``obs_transform`` (tested in tests/smoke/test_ray_rollout.py).

Most tests run on :class:`~tests.rollout_envs.CounterEnv`, whose observation ``[copy seed,
episode, step]`` makes every expected value exact (:func:`counter_reference` is the
hand-written model of it); CartPole checks the same properties on a real env, natively vectorized.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from daedalus.envs.vector import make_vec_env
from daedalus.rollout import (
    DEFAULT_GROUP,
    ActOutput,
    EpisodeStats,
    LocalSource,
    Policy,
    SerialWorker,
    SubprocessWorker,
    Trajectory,
)
from daedalus.rollout.policies import FunctionPolicy, RandomPolicy
from tests.rollout_envs import COUNTER_ID, MAX_EPISODE_STEPS, TERMINATE_AT, EnvMaker

# --------------------------------------------------------------------------- source kinds


@dataclass(frozen=True)
class Kind:
    """One kind of rollout source under test."""

    name: str
    #: ``make_vec_env`` mode of the training envs.
    vec_mode: str
    #: Whether the envs use Gymnasium's NEXT_STEP autoreset (else SAME_STEP).
    next_step: bool
    #: Whether the envs live in another process.
    remote: bool
    #: A Ray source (rollout level only; policies act on copies in the workers).
    ray: bool = False


KINDS = {
    "serial": Kind("serial", vec_mode="sync", next_step=False, remote=False),
    "native": Kind("native", vec_mode="native", next_step=True, remote=False),
    "subprocess": Kind("subprocess", vec_mode="sync", next_step=False, remote=True),
    "ray": Kind("ray", vec_mode="sync", next_step=False, remote=True, ray=True),
}


class SourceFactory:
    """``factory(make_env, num_envs, seed, obs_transform=None) -> source`` of one kind; closes what it built."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.sources: list[Any] = []

    def __call__(self, make_env: EnvMaker, num_envs: int, seed: int | None, obs_transform: Any = None) -> Any:
        if self.kind.ray:
            return self._ray(make_env, num_envs, seed, obs_transform)
        build = partial(make_vec_env, make_env, num_envs, make_env.env_id, dict(make_env.kwargs), self.kind.vec_mode, seed)
        worker = SubprocessWorker(build) if self.kind.remote else SerialWorker(build())
        source = LocalSource(worker, make_env=make_env, obs_transform=obs_transform)
        self.sources.append(source)
        return source

    def _ray(self, make_env: EnvMaker, num_envs: int, seed: int | None, obs_transform: Any) -> Any:
        import sys

        from ray import cloudpickle

        from daedalus.rollout.ray_source import RayOptions, RaySource, worker_source

        # This module's policies travel by value (pytest imports it under a path-dependent name).
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
        workers = 2 if num_envs % 2 == 0 else 1
        per_worker = num_envs // workers
        recipe = partial(make_env_recipe, EnvMaker(make_env.env_id, dict(make_env.kwargs)))

        def build(first_copy: int) -> Any:
            return partial(worker_source, recipe, per_worker, make_env.env_id, dict(make_env.kwargs), self.kind.vec_mode)

        source = RaySource(build, per_worker, RayOptions(num_workers=workers, cpus_per_worker=0.01), make_env, seed, obs_transform)
        self.sources.append(source)
        return source

    def close_all(self) -> None:
        for source in self.sources:
            source.close()


def make_env_recipe(make_env: EnvMaker) -> EnvMaker:
    """What a Ray worker calls to get its ``make_env`` (a picklable recipe)."""
    return make_env


@pytest.fixture(params=list(KINDS))
def source_factory(request: pytest.FixtureRequest) -> Any:
    if KINDS[request.param].ray:
        pytest.importorskip("ray")
        request.getfixturevalue("ray_cluster")
    factory = SourceFactory(KINDS[request.param])
    try:
        yield factory
    finally:
        factory.close_all()


# --------------------------------------------------------------------------- policies


class _Local:
    def get_weights(self) -> dict[str, np.ndarray]:
        return {}

    def set_weights(self, weights: Any) -> None:
        assert not weights


class ParityPolicy(_Local):
    """Deterministic: action = step counter parity of the counter env (``obs[:, 2] % 2``)."""

    def __init__(self, extras: bool = False) -> None:
        self.extras = extras
        self.deterministic_flags: list[bool] = []

    def act(self, obs: np.ndarray, state: Any = None, deterministic: bool = False) -> ActOutput:
        self.deterministic_flags.append(deterministic)
        actions = (obs[:, 2].astype(np.int64) % 2).astype(np.int64)
        if not self.extras:
            return ActOutput(actions=actions)
        return ActOutput(actions=actions, log_probs=expected_log_probs(obs), values=expected_values(obs))


def expected_log_probs(obs: np.ndarray) -> np.ndarray:
    return (-0.5 * (obs[..., 2] + 1)).astype(np.float32)


def expected_values(obs: np.ndarray) -> np.ndarray:
    return (100 * obs[..., 0] + 10 * obs[..., 1] + obs[..., 2]).astype(np.float32)


class LeanPolicy(_Local):
    """Deterministic CartPole policy: push towards where the pole leans (falls after 25-45 steps)."""

    def act(self, obs: np.ndarray, state: Any = None, deterministic: bool = False) -> ActOutput:
        return ActOutput(actions=(obs[:, 2] > 0).astype(np.int64))


class RowStatePolicy(_Local):
    """Parity actions; ``state`` is one counter per row (steps since ``None``); records what it got."""

    def __init__(self) -> None:
        self.received: list[tuple[np.ndarray, Any]] = []

    def act(self, obs: np.ndarray, state: Any = None, deterministic: bool = False) -> ActOutput:
        self.received.append((obs.copy(), None if state is None else list(state)))
        rows = len(obs)
        states = state if isinstance(state, list) else [None] * rows
        next_states = [0 if s is None else s + 1 for s in states]
        return ActOutput(actions=(obs[:, 2].astype(np.int64) % 2), state=next_states)


def policies(policy: Policy) -> dict[str, Policy]:
    return {DEFAULT_GROUP: policy}


def sample(source: Any, policy: Policy, num_steps: int, policy_version: int = 0) -> Trajectory:
    result = source.sample(policies(policy), num_steps, policy_version=policy_version)
    assert list(result) == [DEFAULT_GROUP]
    return result[DEFAULT_GROUP]


def counter() -> EnvMaker:
    return EnvMaker(COUNTER_ID)


def cartpole(**kwargs: Any) -> EnvMaker:
    return EnvMaker("CartPole-v1", kwargs)


# --------------------------------------------------------------------------- reference model


@dataclass
class Reference:
    """What a counter-env source must return for ``num_steps`` steps after ``reset(seed)``."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    valid: np.ndarray
    next_obs: np.ndarray
    last_obs: np.ndarray
    episode_returns: np.ndarray
    episode_lengths: np.ndarray


def counter_reference(seed: int, num_envs: int, num_steps: int, next_step: bool) -> Reference:
    """Hand model of :class:`CounterEnv` copies ``seed + i`` under :class:`ParityPolicy`, from a reset."""
    columns: list[dict[str, list[Any]]] = []
    ended: list[tuple[int, int, float, int]] = []
    for row in range(num_envs):
        s = seed + row
        episode, steps, pending_reset, ret, length = 0, 0, False, 0.0, 0
        col: dict[str, list[Any]] = {k: [] for k in ("obs", "actions", "rewards", "terminated", "truncated", "valid", "next_obs")}
        for t in range(num_steps):
            obs = [s, episode, steps]
            action = steps % 2
            if pending_reset:  # NEXT_STEP: this step only resets; the action is ignored
                episode, steps, pending_reset = episode + 1, 0, False
                reward, term, trunc, valid, next_obs = 0.0, False, False, False, [s, episode, 0]
            else:
                steps += 1
                reward = float(1 + action + s)
                term = (s + episode) % 2 == 0 and steps >= TERMINATE_AT
                trunc = not term and steps >= MAX_EPISODE_STEPS
                valid, next_obs = True, [s, episode, steps]  # the real final obs where it ended
                ret, length = ret + reward, length + 1
                if term or trunc:
                    ended.append((t, row, ret, length))
                    ret, length = 0.0, 0
                    if next_step:
                        pending_reset = True
                    else:
                        episode, steps = episode + 1, 0
            for key, value in zip(col, (obs, action, reward, term, trunc, valid, next_obs), strict=True):
                col[key].append(value)
        col["last"] = [[s, episode, steps]]
        columns.append(col)

    def stack(key: str, dtype: Any) -> np.ndarray:
        return np.array([col[key] for col in columns], dtype=dtype).swapaxes(0, 1)

    ended.sort()
    return Reference(
        obs=stack("obs", np.float32), actions=stack("actions", np.int64), rewards=stack("rewards", np.float32),
        terminated=stack("terminated", bool), truncated=stack("truncated", bool), valid=stack("valid", bool),
        next_obs=stack("next_obs", np.float32), last_obs=stack("last", np.float32)[0],
        episode_returns=np.array([e[2] for e in ended], dtype=np.float64),
        episode_lengths=np.array([e[3] for e in ended], dtype=np.int64),
    )


def assert_matches(traj: Trajectory, ref: Reference, offset: float = 0.0) -> None:
    np.testing.assert_array_equal(traj.obs, ref.obs + offset)
    np.testing.assert_array_equal(traj.actions, ref.actions)
    np.testing.assert_array_equal(traj.rewards, ref.rewards)
    np.testing.assert_array_equal(traj.terminated, ref.terminated)
    np.testing.assert_array_equal(traj.truncated, ref.truncated)
    np.testing.assert_array_equal(traj.valid, ref.valid)
    np.testing.assert_array_equal(traj.next_obs, ref.next_obs + offset)
    np.testing.assert_array_equal(traj.last_obs, ref.last_obs + offset)
    np.testing.assert_array_equal(traj.episode_returns, ref.episode_returns)
    np.testing.assert_array_equal(traj.episode_lengths, ref.episode_lengths)


def assert_same(a: Trajectory, b: Trajectory) -> None:
    for name in ("obs", "actions", "rewards", "terminated", "truncated", "valid", "next_obs", "last_obs",
                 "episode_returns", "episode_lengths"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert sorted(a.extras) == sorted(b.extras)


def hand_episode_stats(traj: Trajectory) -> tuple[list[float], list[int]]:
    """Count the episodes that end in ``traj`` (which starts at a reset) from its per-step arrays."""
    ended: list[tuple[int, int, float, int]] = []
    for row in range(traj.num_rows):
        ret, length = 0.0, 0
        for t in range(traj.num_steps):
            if traj.valid[t, row]:
                ret += float(traj.rewards[t, row])
                length += 1
            if traj.terminated[t, row] or traj.truncated[t, row]:
                ended.append((t, row, ret, length))
                ret, length = 0.0, 0
    ended.sort()
    return [e[2] for e in ended], [e[3] for e in ended]


def play_by_hand(make_env: EnvMaker, policy: Policy, n: int, seed: int, max_steps: int | None = None) -> EpisodeStats:
    """``n`` episodes one after another on one env, episode ``i`` reset with ``seed + i``."""
    env = make_env()
    returns, lengths = [], []
    try:
        for i in range(n):
            obs, _ = env.reset(seed=seed + i)
            total, length, done = 0.0, 0, False
            while not done:
                action = policy.act(np.asarray(obs)[None], None, deterministic=True).to_env()[0]
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                length += 1
                done = terminated or truncated or (max_steps is not None and length >= max_steps)
            returns.append(total)
            lengths.append(length)
    finally:
        env.close()
    return EpisodeStats(returns, lengths)


# CartPole's bounds: an episode terminates when |x| > 2.4 or |theta| > 12 degrees; it resets to
# every component in [-0.05, 0.05].
X_LIMIT, THETA_LIMIT, RESET_BOUND = 2.4, 12 * 2 * np.pi / 360, 0.05


def out_of_bounds(obs: np.ndarray) -> bool:
    return bool(abs(obs[0]) > X_LIMIT or abs(obs[2]) > THETA_LIMIT)


def is_reset_obs(obs: np.ndarray) -> bool:
    return bool(np.all(np.abs(obs) <= RESET_BOUND))


# --------------------------------------------------------------------------- spaces


@pytest.mark.parametrize("num_envs", [1, 3])
def test_spaces_and_sizes_match_the_env(source_factory: SourceFactory, num_envs: int) -> None:
    source = source_factory(counter(), num_envs, 0)
    assert source.observation_space == gym.spaces.Box(-1e6, 1e6, (3,), np.float32)
    assert source.action_space == gym.spaces.Discrete(2)
    assert (source.num_envs, source.num_agents, source.batch_size) == (num_envs, 1, num_envs)
    obs = source.reset(seed=7)
    np.testing.assert_array_equal(obs, [[7 + i, 0, 0] for i in range(num_envs)])  # copy i: seed + i


def test_spaces_match_cartpole(source_factory: SourceFactory) -> None:
    source = source_factory(cartpole(), 2, 0)
    reference = gym.make("CartPole-v1")
    assert source.observation_space == reference.observation_space
    assert source.action_space == reference.action_space == gym.spaces.Discrete(2)
    assert (source.num_envs, source.num_agents, source.batch_size) == (2, 1, 2)
    assert source.reset(seed=0).shape == (2, 4)


def test_reset_seeds_copy_i_with_seed_plus_i_on_cartpole(source_factory: SourceFactory, request: pytest.FixtureRequest) -> None:
    if source_factory.kind.name == "native":
        pytest.skip("documented: Gymnasium's native vector envs draw every copy from one generator seeded once")
    source = source_factory(cartpole(), 3, 0)
    obs = source.reset(seed=7)
    expected = [gym.make("CartPole-v1").reset(seed=7 + i)[0] for i in range(3)]
    np.testing.assert_array_equal(obs, expected)


# --------------------------------------------------------------------------- seeding


def test_same_seed_same_trajectory_different_seed_differs(source_factory: SourceFactory) -> None:
    def run(seed: int, policy_seed: int, deterministic: bool) -> list[Trajectory]:
        source = source_factory(counter(), 2, seed)
        policy: Policy = ParityPolicy() if deterministic else RandomPolicy(gym.spaces.Discrete(2), seed=policy_seed)
        first = sample(source, policy, 6)  # no explicit reset: starts from the construction seed
        source.reset(seed=seed + 100)
        return [first, sample(source, policy, 9)]

    for deterministic in (True, False):
        a, b = run(3, 11, deterministic), run(3, 11, deterministic)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
        np.testing.assert_array_equal(a[0].obs[0, :, 0], [3, 4])  # the construction seed is used
        np.testing.assert_array_equal(a[0].obs[0, :, 2], [0, 0])
        other = run(4, 11, deterministic)
        assert not np.array_equal(a[0].obs, other[0].obs)
        assert not np.array_equal(a[1].rewards, other[1].rewards)
    # The random policy's actions do depend on its seed (both seeds give the same 18 actions otherwise).
    assert not np.array_equal(run(3, 11, False)[1].actions, run(3, 12, False)[1].actions)


def test_same_seed_same_trajectory_on_cartpole(source_factory: SourceFactory) -> None:
    def run(seed: int) -> Trajectory:
        source = source_factory(cartpole(), 3, seed)
        return sample(source, RandomPolicy(gym.spaces.Discrete(2), seed=5), 40)

    a, b, c = run(1), run(1), run(2)
    assert_same(a, b)
    assert a.episode_returns.size > 0  # the comparison covered episode ends
    assert not np.array_equal(a.obs, c.obs)


# --------------------------------------------------------------------------- sample: shapes, values


def test_sample_shapes_extras_and_version(source_factory: SourceFactory) -> None:
    source = source_factory(counter(), 3, 0)
    source.reset(seed=0)
    traj = sample(source, ParityPolicy(extras=True), 7, policy_version=42)
    assert traj.obs.shape == traj.next_obs.shape == (7, 3, 3)
    assert traj.obs.dtype == np.float32
    for name in ("actions", "rewards", "terminated", "truncated", "valid"):
        assert getattr(traj, name).shape == (7, 3), name
    assert traj.terminated.dtype == traj.truncated.dtype == traj.valid.dtype == np.bool_
    assert traj.last_obs.shape == (3, 3)
    assert (traj.num_steps, traj.num_rows, traj.num_transitions) == (7, 3, 21)
    assert traj.group == DEFAULT_GROUP == "default"
    assert traj.policy_version == 42
    assert sorted(traj.extras) == ["log_probs", "values"]
    assert traj.extras["log_probs"].shape == traj.extras["values"].shape == (7, 3)
    np.testing.assert_array_equal(traj.extras["log_probs"], expected_log_probs(traj.obs))
    np.testing.assert_array_equal(traj.extras["values"], expected_values(traj.obs))
    assert_matches(traj, counter_reference(0, 3, 7, source_factory.kind.next_step))
    assert source.env_time > 0 and source.inference_time > 0

    plain = sample(source, ParityPolicy(), 2)
    assert plain.extras == {} and plain.policy_version == 0


def test_sample_matches_the_hand_model_exactly(source_factory: SourceFactory) -> None:
    next_step = source_factory.kind.next_step
    source = source_factory(counter(), 2, 0)
    source.reset(seed=0)
    traj = sample(source, ParityPolicy(), 10)
    assert_matches(traj, counter_reference(0, 2, 10, next_step))
    # The same by hand, literally: copy 0 (seed 0) terminates at t=2, is truncated after 5 more
    # steps; copy 1 (seed 1) is truncated at t=4, then terminates 3 steps later. NEXT_STEP adds
    # one ignored reset step after each end.
    col0_term, col0_trunc = [2], ([8] if next_step else [7])
    col1_term, col1_trunc = ([8] if next_step else [7]), [4]
    assert np.flatnonzero(traj.terminated[:, 0]).tolist() == col0_term
    assert np.flatnonzero(traj.truncated[:, 0]).tolist() == col0_trunc
    assert np.flatnonzero(traj.terminated[:, 1]).tolist() == col1_term
    assert np.flatnonzero(traj.truncated[:, 1]).tolist() == col1_trunc
    # Returns: copy 0 rewards 1 + action, copy 1 rewards 2 + action, parity actions 0,1,0,...
    assert traj.episode_returns.tolist() == [4.0, 12.0, 7.0, 7.0]
    assert traj.episode_lengths.tolist() == [3, 5, 5, 3]


def test_policy_actions_are_stored_and_env_actions_are_stepped(source_factory: SourceFactory) -> None:
    source = source_factory(counter(), 2, 0)
    source.reset(seed=0)
    policy = FunctionPolicy(lambda obs: obs[:, 2].astype(np.int64) % 2 + 10, to_env=lambda actions: actions - 10)
    traj = sample(source, policy, 8)
    ref = counter_reference(0, 2, 8, source_factory.kind.next_step)
    np.testing.assert_array_equal(traj.actions, ref.actions + 10)  # what the learner stores
    np.testing.assert_array_equal(traj.rewards, ref.rewards)  # what the env took


# --------------------------------------------------------------------------- continuity


@pytest.mark.parametrize("split", [3, 4])  # 3: the first call ends right after copy 0's episode end
def test_consecutive_samples_continue_the_same_episodes(source_factory: SourceFactory, split: int) -> None:
    source = source_factory(counter(), 2, 0)
    source.reset(seed=0)
    first = sample(source, ParityPolicy(), split)
    second = sample(source, ParityPolicy(), 12 - split)
    np.testing.assert_array_equal(second.obs[0], first.last_obs)
    ref = counter_reference(0, 2, 12, source_factory.kind.next_step)
    np.testing.assert_array_equal(np.concatenate([first.obs, second.obs]), ref.obs)
    np.testing.assert_array_equal(np.concatenate([first.next_obs, second.next_obs]), ref.next_obs)
    np.testing.assert_array_equal(np.concatenate([first.valid, second.valid]), ref.valid)
    np.testing.assert_array_equal(np.concatenate([first.rewards, second.rewards]), ref.rewards)
    np.testing.assert_array_equal(np.concatenate([first.episode_returns, second.episode_returns]), ref.episode_returns)
    np.testing.assert_array_equal(np.concatenate([first.episode_lengths, second.episode_lengths]), ref.episode_lengths)
    np.testing.assert_array_equal(second.last_obs, ref.last_obs)
    if split == 3:
        # Copy 0 terminated at the last step of the first call: NEXT_STEP resets it first.
        assert second.valid[0].tolist() == [not source_factory.kind.next_step, True]


@pytest.mark.parametrize("first_steps", [3, 4])  # 3: copy 0's episode has just ended (NEXT_STEP: reset pending)
def test_reset_restarts_every_copy_whatever_state_it_was_in(source_factory: SourceFactory, first_steps: int) -> None:
    source = source_factory(counter(), 2, 0)
    source.reset(seed=0)
    sample(source, ParityPolicy(), first_steps)
    np.testing.assert_array_equal(source.reset(seed=0), [[0, 0, 0], [1, 0, 0]])
    assert_matches(sample(source, ParityPolicy(), 10), counter_reference(0, 2, 10, source_factory.kind.next_step))


def test_episodes_between_samples_do_not_disturb_training_envs(source_factory: SourceFactory) -> None:
    source = source_factory(counter(), 2, 0)
    source.reset(seed=0)
    first = sample(source, ParityPolicy(), 4)
    source.episodes(policies(ParityPolicy()), 3, seed=50)
    second = sample(source, ParityPolicy(), 8)
    np.testing.assert_array_equal(second.obs[0], first.last_obs)
    ref = counter_reference(0, 2, 12, source_factory.kind.next_step)
    np.testing.assert_array_equal(np.concatenate([first.obs, second.obs]), ref.obs)


# --------------------------------------------------------------------------- ends of episodes


def test_terminated_and_truncated_are_kept_apart(source_factory: SourceFactory) -> None:
    source = source_factory(counter(), 4, 0)
    source.reset(seed=0)
    traj = sample(source, ParityPolicy(), 12)
    assert not (traj.terminated & traj.truncated).any()
    ends = traj.terminated | traj.truncated
    steps_at_end = traj.next_obs[..., 2][ends]
    # A terminal state (step 3 of a phase-0 episode) is terminated, never truncated ...
    np.testing.assert_array_equal(traj.next_obs[..., 2][traj.terminated], TERMINATE_AT)
    # ... and the time limit (step 5 of a phase-1 episode) truncates, never terminates.
    np.testing.assert_array_equal(traj.next_obs[..., 2][traj.truncated], MAX_EPISODE_STEPS)
    # Seeds 0..3, 12 steps: even copies end T(t=2) tr(7) T(10), odd ones tr(4) T(7); NEXT_STEP
    # shifts every later end by one step per earlier end: even T(2) tr(8), odd tr(4) T(8).
    expected = (4, 4) if source_factory.kind.next_step else (6, 4)
    assert (int(traj.terminated.sum()), int(traj.truncated.sum())) == expected
    assert sorted(set(steps_at_end.tolist())) == [TERMINATE_AT, MAX_EPISODE_STEPS]


def test_truncation_by_time_limit_on_cartpole(source_factory: SourceFactory) -> None:
    source = source_factory(cartpole(max_episode_steps=6), 2, 0)
    source.reset(seed=0)
    traj = sample(source, LeanPolicy(), 14)  # balances for more than 6 steps
    assert not traj.terminated.any()
    expected = [5, 12] if source_factory.kind.next_step else [5, 11]
    for row in range(2):
        assert np.flatnonzero(traj.truncated[:, row]).tolist() == expected
    assert traj.episode_lengths.tolist() == [6, 6, 6, 6]
    assert traj.episode_returns.tolist() == [6.0, 6.0, 6.0, 6.0]


def test_final_observations_are_real_and_reset_observations_follow(source_factory: SourceFactory) -> None:
    next_step = source_factory.kind.next_step
    source = source_factory(counter(), 2, 0)
    source.reset(seed=0)
    traj = sample(source, ParityPolicy(), 10)
    # Copy 0 (seed 0) terminates at t=2 in state [0, 0, 3]; copy 1 is truncated at t=4 in [1, 0, 5].
    assert traj.terminated[2, 0] and traj.truncated[4, 1]
    np.testing.assert_array_equal(traj.next_obs[2, 0], [0, 0, 3])
    np.testing.assert_array_equal(traj.next_obs[4, 1], [1, 0, 5])
    if next_step:
        # NEXT_STEP: the final obs is acted on once more, that step is invalid and only resets.
        np.testing.assert_array_equal(traj.obs[3, 0], [0, 0, 3])
        np.testing.assert_array_equal(traj.obs[5, 1], [1, 0, 5])
        assert not traj.valid[3, 0] and not traj.valid[5, 1]
        assert traj.rewards[3, 0] == 0 and traj.rewards[5, 1] == 0
        np.testing.assert_array_equal(traj.next_obs[3, 0], [0, 1, 0])
        np.testing.assert_array_equal(traj.obs[4, 0], [0, 1, 0])
        np.testing.assert_array_equal(traj.obs[6, 1], [1, 1, 0])
    else:
        np.testing.assert_array_equal(traj.obs[3, 0], [0, 1, 0])
        np.testing.assert_array_equal(traj.obs[5, 1], [1, 1, 0])


def test_final_observations_on_cartpole(source_factory: SourceFactory) -> None:
    next_step = source_factory.kind.next_step
    source = source_factory(cartpole(), 4, 0)
    source.reset(seed=0)
    traj = sample(source, RandomPolicy(gym.spaces.Discrete(2), seed=0), 80)
    ends = np.argwhere(traj.terminated[:-1])
    assert len(ends) >= 5
    for t, row in ends:
        final = traj.next_obs[t, row]
        assert out_of_bounds(final), final  # the real final state, not a reset one
        assert not traj.truncated[t, row]
        if next_step:
            np.testing.assert_array_equal(traj.obs[t + 1, row], final)
            assert not traj.valid[t + 1, row] and traj.rewards[t + 1, row] == 0
            assert is_reset_obs(traj.next_obs[t + 1, row])
        else:
            assert is_reset_obs(traj.obs[t + 1, row])
    # Only steps right after an end are invalid.
    expected_valid = np.ones_like(traj.valid)
    if next_step:
        expected_valid[1:] = ~(traj.terminated[:-1] | traj.truncated[:-1])
    np.testing.assert_array_equal(traj.valid, expected_valid)


def test_every_row_is_valid_with_same_step_autoreset(source_factory: SourceFactory) -> None:
    source = source_factory(counter(), 3, 0)
    source.reset(seed=0)
    traj = sample(source, ParityPolicy(), 16)
    assert (traj.terminated | traj.truncated).sum() >= 6
    if source_factory.kind.next_step:
        ends = traj.terminated[:-1] | traj.truncated[:-1]
        np.testing.assert_array_equal(~traj.valid[1:], ends)
        assert traj.valid[0].all()
    else:
        assert traj.valid.all()


# --------------------------------------------------------------------------- episode statistics


def test_trajectory_episode_stats_match_a_hand_count(source_factory: SourceFactory) -> None:
    source = source_factory(cartpole(), 3, 0)
    source.reset(seed=3)
    traj = sample(source, RandomPolicy(gym.spaces.Discrete(2), seed=3), 90)
    returns, lengths = hand_episode_stats(traj)
    assert len(returns) >= 6
    assert traj.episode_returns.tolist() == returns
    assert traj.episode_lengths.tolist() == lengths
    assert returns == [float(n) for n in lengths]  # CartPole: reward 1 for every valid step
    assert traj.episode_returns.dtype == np.float64 and traj.episode_lengths.dtype == np.int64


#: Counter episodes with seeds 10..14 under ParityPolicy: seed s, phase (s % 2), return
#: ``length * (1 + s) + sum(parity actions)``: 3*11+1, 5*12+2, 3*13+1, 5*14+2, 3*15+1.
COUNTER_EPISODES = EpisodeStats([34.0, 62.0, 40.0, 72.0, 46.0], [3, 5, 3, 5, 3])


def test_episodes_returns_n_episodes_in_seed_order_whatever_num_envs(source_factory: SourceFactory) -> None:
    make_env = counter()
    source = source_factory(make_env, 2, 0)
    policy = ParityPolicy()
    assert play_by_hand(make_env, policy, 5, seed=10) == COUNTER_EPISODES
    frames: list[int] = []
    for num_envs in (1, 3, 5, 3, 1):  # the copies are reused between calls
        frames.clear()
        policy.deterministic_flags.clear()
        stats = source.episodes(policies(policy), 5, deterministic=True, seed=10, on_frame=lambda i, env: frames.append(i),
                                num_envs=num_envs)
        assert stats == COUNTER_EPISODES, num_envs
        assert len(frames) == 5 + sum(COUNTER_EPISODES.lengths)  # every reset and every step
        assert set(policy.deterministic_flags) == {True}
    fresh = source_factory(make_env, 1, 0)
    assert fresh.episodes(policies(policy), 5, deterministic=False, seed=10) == COUNTER_EPISODES
    assert set(policy.deterministic_flags) == {True, False}
    assert fresh.episodes(policies(policy), 1, seed=11).returns == [62.0]


def test_episodes_max_steps_cuts_episodes(source_factory: SourceFactory) -> None:
    make_env = counter()
    source = source_factory(make_env, 1, 0)
    stats = source.episodes(policies(ParityPolicy()), 5, seed=10, max_steps=2)
    assert stats == EpisodeStats([23.0, 25.0, 27.0, 29.0, 31.0], [2, 2, 2, 2, 2])  # 2 * (1 + s) + 1
    assert stats == play_by_hand(make_env, ParityPolicy(), 5, seed=10, max_steps=2)
    long = source.episodes(policies(ParityPolicy()), 2, seed=11, max_steps=4, num_envs=2)
    assert long == EpisodeStats([4 * 12 + 2.0, 3 * 13 + 1.0], [4, 3])  # only the longer one is cut


def test_episodes_on_cartpole_match_playing_them_by_hand(source_factory: SourceFactory) -> None:
    make_env = cartpole()
    source = source_factory(make_env, 2, 0)
    expected = play_by_hand(make_env, LeanPolicy(), 4, seed=20, max_steps=120)
    assert len(set(expected.lengths)) > 1  # episodes of different lengths: order matters
    for num_envs in (1, 3, 4):
        assert source.episodes(policies(LeanPolicy()), 4, seed=20, max_steps=120, num_envs=num_envs) == expected


# --------------------------------------------------------------------------- step level


def test_step_level_api_agrees_with_sample(source_factory: SourceFactory) -> None:
    if source_factory.kind.ray:
        pytest.skip("a Ray source is rollout level only: step() is refused (test_ray_rollout.py checks the message)")
    a = source_factory(counter(), 2, 0)
    b = source_factory(counter(), 2, 0)
    a.reset(seed=0)
    traj = sample(a, ParityPolicy(), 10)
    np.testing.assert_array_equal(b.reset(seed=0), traj.obs[0])
    returns, lengths = [], []
    for t in range(10):
        batch = b.step(traj.actions[t])
        expected_obs = traj.obs[t + 1] if t + 1 < 10 else traj.last_obs
        np.testing.assert_array_equal(batch.obs, expected_obs)
        np.testing.assert_array_equal(batch.rewards, traj.rewards[t])
        np.testing.assert_array_equal(batch.terminated, traj.terminated[t])
        np.testing.assert_array_equal(batch.truncated, traj.truncated[t])
        np.testing.assert_array_equal(batch.valid, traj.valid[t])
        ended = batch.terminated | batch.truncated
        np.testing.assert_array_equal(batch.final_obs[ended], traj.next_obs[t][ended])
        returns += batch.episode_returns.tolist()
        lengths += batch.episode_lengths.tolist()
    assert returns == traj.episode_returns.tolist() == [4.0, 12.0, 7.0, 7.0]
    assert lengths == traj.episode_lengths.tolist()
    # sample continues from where step() left off.
    after = sample(b, ParityPolicy(), 1)
    np.testing.assert_array_equal(after.obs[0], traj.last_obs)


# --------------------------------------------------------------------------- obs_transform


class RecordingTransform:
    """``obs + 1000``; records ``(raw obs, update)`` of every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, bool]] = []

    def __call__(self, obs: np.ndarray, update: bool) -> np.ndarray:
        self.calls.append((np.array(obs, copy=True), update))
        return obs + 1000


def test_obs_transform_updates_on_acted_obs_only(source_factory: SourceFactory) -> None:
    if source_factory.kind.ray:
        pytest.skip("Ray workers prepare observations with the policy copy's prepare(); see test_ray_rollout.py")
    next_step = source_factory.kind.next_step
    transform = RecordingTransform()
    source = source_factory(counter(), 2, 0, obs_transform=transform)
    transform.calls.clear()  # anything the construction did
    source.reset(seed=0)
    traj = sample(source, ParityPolicy(), 10)  # 1000 is even: the parity policy acts the same
    ref = counter_reference(0, 2, 10, next_step)
    assert_matches(traj, ref, offset=1000)  # what the policy saw, final obs transformed too

    updating = [obs for obs, update in transform.calls if update]
    frozen = [obs for obs, update in transform.calls if not update]
    # One update=True call on the reset obs, then one per step on the obs acted on next.
    assert len(updating) == 11
    np.testing.assert_array_equal(np.stack(updating), np.concatenate([ref.obs, ref.last_obs[None]]))
    # update=False: the real final obs, once for each step where an episode ended.
    end_steps = np.flatnonzero((ref.terminated | ref.truncated).any(axis=1))
    assert end_steps.tolist() == ([2, 4, 8] if next_step else [2, 4, 7])
    assert len(frozen) == len(end_steps)
    for obs, t in zip(frozen, end_steps, strict=True):
        ended = ref.terminated[t] | ref.truncated[t]
        np.testing.assert_array_equal(obs[ended], ref.next_obs[t][ended])
    finals = {tuple(obs) for obs in ref.next_obs[ref.terminated | ref.truncated]}
    acted_finals = {tuple(row) for obs in updating for row in obs} & finals
    # SAME_STEP: a final obs is never acted on, so never moves statistics; NEXT_STEP acts on it once.
    assert acted_finals == (finals if next_step else set())

    transform.calls.clear()
    stats = source.episodes(policies(ParityPolicy()), 5, seed=10, num_envs=2)
    assert stats == COUNTER_EPISODES
    assert transform.calls and {update for _, update in transform.calls} == {False}  # evaluation freezes


# --------------------------------------------------------------------------- recurrent state


def test_policy_state_restarts_with_each_episode(source_factory: SourceFactory) -> None:
    if source_factory.kind.ray:
        pytest.skip("the policy acts in the workers: what it records stays there")
    source = source_factory(counter(), 2, 0)
    source.reset(seed=0)
    policy = RowStatePolicy()
    sample(source, policy, 10)
    for obs, state in policy.received:
        for row in np.flatnonzero(obs[:, 2] == 0):  # the first step of an episode
            assert state is None or state[row] is None, (obs, state)


# --------------------------------------------------------------------------- close


def test_close_releases_envs_and_processes_and_is_idempotent(source_factory: SourceFactory) -> None:
    make_env = counter()
    source = source_factory(make_env, 2, 0)
    sample(source, ParityPolicy(), 3)
    source.episodes(policies(ParityPolicy()), 2, seed=0)
    if source_factory.kind.ray:
        import ray

        actors = [worker.actor for worker in source._workers]
        assert len(source.worker_pids()) == 2
        source.close()
        source.close()
        for actor in actors:
            with pytest.raises(ray.exceptions.RayActorError):
                ray.get(actor.pid.remote(), timeout=30)
        for env in make_env.created:
            assert env.unwrapped.was_closed
        return
    process = source.worker._process if source_factory.kind.remote else None
    if process is not None:
        assert process.is_alive()
    source.close()
    source.close()
    assert make_env.created  # at least the episode copies were built here
    for env in make_env.created:
        assert env.unwrapped.was_closed
    if process is not None:
        assert not process.is_alive()
        assert process.exitcode == 0  # it shut down cleanly rather than being terminated
    else:
        envs = source.worker.envs
        assert getattr(envs, "closed", False) or getattr(envs, "was_closed", False)


def test_close_after_the_child_died_does_not_raise(source_factory: SourceFactory) -> None:
    if not source_factory.kind.remote:
        pytest.skip("no child process")
    if source_factory.kind.ray:
        pytest.skip("a Ray worker that died is restarted: tests/smoke/test_ray_rollout.py")
    source = source_factory(counter(), 1, 0)
    process = source.worker._process
    process.kill()
    process.join(timeout=5)
    source.close()
    source.close()
    assert not process.is_alive()
