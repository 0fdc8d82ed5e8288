"""evaluate() and record_video() on a toy env whose returns are worked out by hand.

CountdownEnv reset with seed ``s`` lasts ``1 + s % 4`` steps and pays ``action`` (0 or 1)
per step. An agent that always plays 1 therefore gets return == length, and seeds
0, 1, 2, 3 give lengths 1, 2, 3, 4: mean 2.5, population std sqrt(1.25).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from daedalus.agents.base import Agent, TensorAgent
from daedalus.errors import DaedalusError, MissingDependencyError
from daedalus.evaluation import EvalResult, evaluate, record_video
from daedalus.rollout.source import stack_observations as _stack


class CountdownEnv(gym.Env):
    """Lasts ``1 + seed % 4`` steps; reward = action; observation = steps left."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, render_mode: str | None = None, frame_shape: tuple[int, int] = (32, 48)):
        self.observation_space = gym.spaces.Box(0.0, 4.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.render_mode = render_mode
        self.frame_shape = frame_shape
        self.reset_seeds: list[int | None] = []
        self.render_calls = 0
        self.closed = False
        self._left = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.reset_seeds.append(seed)
        length = 1 + seed % 4 if seed is not None else 1 + int(self.np_random.integers(4))
        self._left = length
        return np.array([self._left], dtype=np.float32), {}

    def step(self, action: Any):
        assert self._left > 0, "stepped after the episode ended"
        self._left -= 1
        obs = np.array([self._left], dtype=np.float32)
        return obs, float(action), self._left == 0, False, {}

    def render(self) -> np.ndarray | None:
        self.render_calls += 1
        if self.render_mode != "rgb_array":
            return None
        return np.full((*self.frame_shape, 3), 40 * self._left, dtype=np.uint8)

    def close(self) -> None:
        self.closed = True


class Factory:
    """``env_factory(seed)`` that remembers the seeds it got and the envs it made."""

    def __init__(self, wrap: Any = None, **env_kwargs: Any) -> None:
        self.seeds: list[int | None] = []
        self.envs: list[CountdownEnv] = []
        self.wrap = wrap
        self.env_kwargs = env_kwargs

    def __call__(self, seed: int | None) -> gym.Env:
        self.seeds.append(seed)
        env = CountdownEnv(**self.env_kwargs)
        self.envs.append(env)
        return self.wrap(env) if self.wrap else env

    @property
    def reset_seeds(self) -> list[int | None]:
        return [seed for env in self.envs for seed in env.reset_seeds]


class AlwaysOne(Agent):
    """Plain agent: always plays 1; counts steps in extra_state and records what it receives."""

    def __init__(self) -> None:
        super().__init__("always-one")
        self.received_states: list[Any] = []

    def get_action(self, obs: Any, extra_state: Any = None) -> tuple[Any, Any]:
        self.received_states.append(extra_state)
        return 1, (extra_state or 0) + 1


class StubTensorAgent(TensorAgent):
    """Batched agent: 1 everywhere when deterministic, torch coin flips otherwise."""

    def __init__(self) -> None:
        super().__init__("stub")
        self.calls: list[tuple[int, bool]] = []

    def predict(self, obs: Any, deterministic: bool = True) -> Any:
        obs = np.asarray(obs)
        assert obs.shape[1:] == (1,), "observations must be batched along the first axis"
        self.calls.append((obs.shape[0], deterministic))
        if deterministic:
            return np.ones(obs.shape[0], dtype=np.int64)
        return torch.randint(0, 2, (obs.shape[0],))


# --------------------------------------------------------------------------- EvalResult


def test_eval_result_statistics_and_format() -> None:
    result = EvalResult(
        returns=[1.0, 2.0, 3.0, 4.0], lengths=[1, 2, 3, 4], deterministic=True, seed=0
    )
    assert result.n_episodes == 4
    assert result.mean_return == 2.5
    assert result.std_return == pytest.approx(math.sqrt(1.25), abs=1e-12)
    assert (result.min_return, result.max_return) == (1.0, 4.0)
    assert result.mean_length == 2.5
    assert result.format() == (
        "2.50 ± 1.12 (min 1.00, max 4.00), mean length 2.5 over 4 episodes (deterministic)"
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["mean_return"] == 2.5 and data["returns"] == [1.0, 2.0, 3.0, 4.0]
    assert data["lengths"] == [1, 2, 3, 4] and data["seed"] == 0 and data["deterministic"] is True
    assert EvalResult.from_dict(data) == result
    assert json.loads(result.to_json()) == data


# --------------------------------------------------------------------------- plain agents


def test_plain_agent_exact_returns() -> None:
    agent, factory = AlwaysOne(), Factory()
    result = evaluate(agent, factory, n_episodes=4, seed=0)
    assert result.returns == [1.0, 2.0, 3.0, 4.0]
    assert result.lengths == [1, 2, 3, 4]
    assert result.mean_return == 2.5
    assert result.std_return == pytest.approx(math.sqrt(1.25))
    assert result.deterministic is True and result.seed == 0
    # One env, reset once per episode with seeds seed, seed + 1, ...; closed at the end.
    assert factory.seeds == [0]
    assert factory.reset_seeds == [0, 1, 2, 3]
    assert all(env.closed for env in factory.envs)
    # extra_state starts at None every episode and is threaded through within one.
    assert agent.received_states == [None, None, 1, None, 1, 2, None, 1, 2, 3]


def test_plain_agent_seed_offset_and_max_steps() -> None:
    result = evaluate(AlwaysOne(), Factory(), n_episodes=6, seed=10, max_steps=2)
    # seeds 10..15 give lengths 3, 4, 1, 2, 3, 4, cut at 2 steps
    assert result.lengths == [2, 2, 1, 2, 2, 2]
    assert result.returns == [2.0, 2.0, 1.0, 2.0, 2.0, 2.0]


def test_plain_agent_deterministic_flag_is_only_recorded() -> None:
    result = evaluate(AlwaysOne(), Factory(), n_episodes=4, seed=0, deterministic=False)
    assert result.deterministic is False
    assert result.returns == [1.0, 2.0, 3.0, 4.0]


def test_truncation_ends_episodes() -> None:
    factory = Factory(wrap=lambda env: gym.wrappers.TimeLimit(env, max_episode_steps=3))
    assert evaluate(AlwaysOne(), factory, n_episodes=4, seed=0).lengths == [1, 2, 3, 3]
    assert evaluate(StubTensorAgent(), factory, n_episodes=4, seed=0).lengths == [1, 2, 3, 3]


def test_render_calls_env_render_after_every_reset_and_step() -> None:
    factory = Factory()
    evaluate(AlwaysOne(), factory, n_episodes=2, seed=0, render=True)
    assert factory.envs[0].render_calls == 2 + 3  # two resets, 1 + 2 steps


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="n_episodes"):
        evaluate(AlwaysOne(), Factory(), n_episodes=0)
    with pytest.raises(ValueError, match="max_steps"):
        evaluate(AlwaysOne(), Factory(), max_steps=0)


# --------------------------------------------------------------------------- batched agents


def test_batched_agent_runs_envs_in_lockstep() -> None:
    agent, factory = StubTensorAgent(), Factory()
    result = evaluate(agent, factory, n_episodes=4, seed=0)
    assert result.returns == [1.0, 2.0, 3.0, 4.0]
    assert result.lengths == [1, 2, 3, 4]
    # One forward pass per step over the envs still running: 4 envs, then 3, 2, 1.
    assert agent.calls == [(4, True), (3, True), (2, True), (1, True)]
    assert factory.seeds == [0, 1, 2, 3]
    assert factory.reset_seeds == [0, 1, 2, 3]  # exactly one episode per env
    assert all(env.closed for env in factory.envs)


def test_batched_agent_with_fewer_envs_than_episodes_is_unbiased() -> None:
    agent, factory = StubTensorAgent(), Factory()
    result = evaluate(agent, factory, n_episodes=4, seed=0, num_envs=2)
    # Same episodes, same order as one env at a time, although the short ones finish first.
    assert result.returns == [1.0, 2.0, 3.0, 4.0]
    assert result.lengths == [1, 2, 3, 4]
    assert sorted(factory.reset_seeds) == [0, 1, 2, 3]
    assert factory.seeds == [0, 1]
    # Slot 0 plays episodes 0 then 2; slot 1 plays 1 then 3 (worked out step by step).
    assert [size for size, _ in agent.calls] == [2, 2, 2, 2, 1, 1]


def test_batched_agent_max_steps() -> None:
    result = evaluate(StubTensorAgent(), Factory(), n_episodes=4, seed=0, max_steps=2)
    assert result.lengths == [1, 2, 2, 2]
    assert result.returns == [1.0, 2.0, 2.0, 2.0]


def test_stochastic_evaluation_passes_flag_and_is_reproducible() -> None:
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    agent = StubTensorAgent()
    first = evaluate(agent, Factory(), n_episodes=8, deterministic=False, seed=3)
    assert {flag for _, flag in agent.calls} == {False}
    second = evaluate(StubTensorAgent(), Factory(), n_episodes=8, deterministic=False, seed=3)
    assert first == second
    assert first.deterministic is False
    # Coin flips: some steps pay 0, so returns fall short of lengths.
    assert sum(first.returns) < sum(first.lengths)
    assert all(0 <= ret <= length for ret, length in zip(first.returns, first.lengths, strict=True))
    # The caller's random state is untouched.
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])


def test_unseeded_evaluation_runs_exactly_n_episodes() -> None:
    factory = Factory()
    result = evaluate(StubTensorAgent(), factory, n_episodes=5)
    assert result.seed is None and result.n_episodes == 5
    assert all(1 <= length <= 4 for length in result.lengths)
    assert result.returns == [float(length) for length in result.lengths]
    assert factory.reset_seeds == [None] * 5


def test_tensor_agent_without_predict_falls_back_to_get_action() -> None:
    class OnlyGetAction(TensorAgent):
        def get_action(self, obs: Any, extra_state: Any = None) -> tuple[Any, Any]:
            return 1, extra_state

    assert evaluate(OnlyGetAction(), Factory(), n_episodes=4, seed=0).lengths == [1, 2, 3, 4]


def test_stack_batches_dict_and_tuple_observations() -> None:
    batch = _stack(
        [{"a": np.zeros(2), "b": (1, np.ones(3))}, {"a": np.ones(2), "b": (2, np.ones(3))}]
    )
    assert batch["a"].shape == (2, 2)
    assert batch["b"][0].tolist() == [1, 2]
    assert batch["b"][1].shape == (2, 3)


# --------------------------------------------------------------------------- video


def test_record_video_without_imageio_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "imageio", None)
    with pytest.raises(MissingDependencyError, match=r"daedalus\[video\]"):
        record_video(AlwaysOne(), Factory(render_mode="rgb_array"), tmp_path / "v.mp4")


def test_record_video_needs_rgb_array(tmp_path: Path) -> None:
    pytest.importorskip("imageio")
    factory = Factory()
    with pytest.raises(DaedalusError, match="rgb_array"):
        record_video(AlwaysOne(), factory, tmp_path / "v.gif")
    assert factory.envs[0].closed


@pytest.mark.parametrize(
    ("agent_cls", "frame_shape", "expected_shape"),
    [(StubTensorAgent, (32, 48), (32, 48, 3)), (AlwaysOne, (33, 47), (34, 48, 3))],
)
def test_record_video_mp4_frame_count(
    tmp_path: Path, agent_cls: type, frame_shape: tuple[int, int], expected_shape: tuple
) -> None:
    imageio = pytest.importorskip("imageio")
    pytest.importorskip("imageio_ffmpeg")
    path = tmp_path / "videos" / "replay.mp4"
    factory = Factory(render_mode="rgb_array", frame_shape=frame_shape)
    result = record_video(agent_cls(), factory, path, n_episodes=2, seed=0, fps=10)
    assert result.lengths == [1, 2] and result.returns == [1.0, 2.0]
    assert path.exists() and path.stat().st_size > 0
    with imageio.get_reader(path) as reader:
        frames = list(reader.iter_data())
        assert reader.get_meta_data()["fps"] == 10
    # One frame per reset plus one per step: (1 + 1) + (1 + 2).
    assert len(frames) == 5
    assert frames[0].shape == expected_shape
    assert factory.envs[0].closed


def test_record_video_gif(tmp_path: Path) -> None:
    imageio = pytest.importorskip("imageio")
    path = tmp_path / "replay.gif"
    record_video(AlwaysOne(), Factory(render_mode="rgb_array"), path, n_episodes=3, seed=1)
    # seeds 1, 2, 3: lengths 2, 3, 4 -> (1 + 2) + (1 + 3) + (1 + 4) frames
    assert len(imageio.mimread(path)) == 12
