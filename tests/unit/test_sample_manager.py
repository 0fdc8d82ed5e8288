"""``daedalus.SampleManager`` (ReAllY's API): exact numbers on the counter env of tests/rollout_envs.py.

:class:`~tests.rollout_envs.CounterEnv` copy ``s`` observes ``[s, episode, step]``; an episode of
phase ``(s + episode) % 2 == 0`` terminates at step 3, the others are truncated at step 5; a
step's reward is ``1 + action + s``. With ``seed=0`` and 2 copies, 8 steps of action 1 are:

- copy 0 (reward 2): episode 0 terminates at t=2, episode 1 runs t=3..7 and is truncated at t=7;
- copy 1 (reward 3): episode 0 is truncated at t=4, episode 1 runs t=5..7 and terminates at t=7.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from daedalus.errors import DaedalusError
from daedalus.sample_manager import FifoBuffer, ModelPolicy, SampleManager, SamplingSettings
from tests.rollout_envs import EnvMaker


class Fixed(nn.Module):
    """Q-values ``bias`` whatever the observation (zero weights), optionally a constant value estimate."""

    def __init__(self, bias: tuple[float, float] = (0.0, 1.0), value: float | None = None) -> None:
        super().__init__()
        self.q = nn.Linear(3, 2)
        self.value = value
        with torch.no_grad():
            self.q.weight.zero_()
            self.q.bias.copy_(torch.tensor(bias))

    def forward(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"q_values": self.q(state)}
        if self.value is not None:
            out["value_estimate"] = torch.full((len(state), 1), self.value)
        return out


class Gaussian(nn.Module):
    """``mu = 0``, ``sigma = scale`` for Pendulum (3 observations, 1 action)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.mu = nn.Linear(3, 1)
        self.scale = scale
        with torch.no_grad():
            self.mu.weight.zero_()
            self.mu.bias.zero_()

    def forward(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        mu = self.mu(state)
        return {"mu": mu, "sigma": torch.full_like(mu, self.scale)}


def manager(backend: str = "local", num_parallel: int = 2, **kwargs: Any) -> SampleManager:
    defaults: dict[str, Any] = {"action_sampling_type": "epsilon_greedy", "epsilon": 0.0, "seed": 0, "model_kwargs": {}}
    return SampleManager(Fixed, EnvMaker(), num_parallel, 16, backend=backend, **{**defaults, **kwargs})


COPY0_REWARD, COPY1_REWARD = 2.0, 3.0


# --------------------------------------------------------------------------- get_data


def test_get_data_keys_shapes_and_flags() -> None:
    with manager(returns=["value_estimate", "log_prob", "monte_carlo"], model_kwargs={"value": 10.0}) as m:
        data = m.get_data()
    assert set(data) == {"state", "action", "reward", "state_new", "not_done", "terminated", "truncated", "value_estimate", "log_prob", "monte_carlo"}
    assert data["state"].shape == data["state_new"].shape == (16, 3)
    assert {k: data[k].shape for k in data if k not in ("state", "state_new")} == dict.fromkeys(set(data) - {"state", "state_new"}, (16,))
    assert data["action"].dtype == np.int64 and (data["action"] == 1).all()
    # Copy-major: copy 0's 8 steps, then copy 1's.
    np.testing.assert_array_equal(data["reward"], [COPY0_REWARD] * 8 + [COPY1_REWARD] * 8)
    np.testing.assert_array_equal(data["terminated"], [0, 0, 1, 0, 0, 0, 0, 0] + [0, 0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(data["truncated"], [0, 0, 0, 0, 0, 0, 0, 1] + [0, 0, 0, 0, 1, 0, 0, 0])
    # not_done is "not terminated": a time-limit cut still bootstraps.
    np.testing.assert_array_equal(data["not_done"], 1.0 - data["terminated"])
    assert data["not_done"].dtype == np.float32
    # state_new where episode 0 of copy 0 ended is its real final observation, not the reset one.
    np.testing.assert_array_equal(data["state_new"][2], [0, 0, 3])
    np.testing.assert_array_equal(data["state"][3], [0, 1, 0])
    np.testing.assert_array_equal(data["state_new"][:2], data["state"][1:3])
    np.testing.assert_array_equal(data["value_estimate"], np.full(16, 10.0))
    np.testing.assert_array_equal(data["log_prob"], np.zeros(16))  # epsilon 0: the greedy action for sure


def test_monte_carlo_returns_by_hand() -> None:
    with manager(returns=["monte_carlo"], gamma=0.5) as m:
        data = m.get_data()
    copy0 = [3.5, 3.0, 2.0, 3.875, 3.75, 3.5, 3.0, 2.0]  # terminated at t=2; truncated at t=7 (no value: 0)
    copy1 = [5.8125, 5.625, 5.25, 4.5, 3.0, 5.25, 4.5, 3.0]  # truncated at t=4; terminated at t=7
    np.testing.assert_allclose(data["monte_carlo"], copy0 + copy1, rtol=0, atol=1e-6)


def test_monte_carlo_bootstraps_cut_episodes_with_the_value_estimate() -> None:
    with manager(returns=["monte_carlo"], gamma=0.5, model_kwargs={"value": 10.0}) as m:
        data = m.get_data()
        cut_by_rollout = m.get_data(total_steps=12)  # 6 more steps: t=8..13 of each copy
    copy0 = [3.5, 3.0, 2.0, 4.1875, 4.375, 4.75, 5.5, 7.0]  # the truncation at t=7 adds 0.5 * 10
    copy1 = [6.125, 6.25, 6.5, 7.0, 8.0, 5.25, 4.5, 3.0]  # the truncation at t=4 adds 0.5 * 10; t=7 terminated
    np.testing.assert_allclose(data["monte_carlo"], copy0 + copy1, rtol=0, atol=1e-6)
    # Copy 0 goes on with episode 2 (terminates after 3 steps) and episode 3 (running at the end).
    np.testing.assert_array_equal(cut_by_rollout["state"][:6, 1], [2, 2, 2, 3, 3, 3])
    np.testing.assert_allclose(cut_by_rollout["monte_carlo"][:6], [3.5, 3.0, 2.0, 4.75, 5.5, 7.0], rtol=0, atol=1e-6)


def test_get_data_rounds_up_to_whole_steps_and_continues_episodes() -> None:
    with manager() as m:
        first = m.get_data(total_steps=3)  # ceil(3 / 2) = 2 steps of each copy
        second = m.get_data(total_steps=2)
    assert len(first["reward"]) == 4 and len(second["reward"]) == 2
    np.testing.assert_array_equal(second["state"][:, 2], [2, 2])  # step 2 of each copy's episode 0


# --------------------------------------------------------------------------- sampling types


def test_log_probs_of_epsilon_greedy_and_thompson() -> None:
    with manager(returns=["log_prob"], epsilon=0.5) as m:
        data = m.get_data(total_steps=400)
    assert set(np.unique(data["action"])) == {0, 1}
    # Greedy (1) has probability 1 - 0.5 + 0.25, the other action 0.25.
    np.testing.assert_allclose(data["log_prob"], np.where(data["action"] == 1, np.log(0.75), np.log(0.25)), rtol=1e-6)
    assert 0.65 < data["action"].mean() < 0.85
    with manager(returns=["log_prob"], action_sampling_type="thompson", temperature=0.5) as m:
        data = m.get_data(total_steps=400)
    p1 = 1 / (1 + np.exp(-2.0))  # softmax([0, 1] / 0.5)
    np.testing.assert_allclose(data["log_prob"], np.where(data["action"] == 1, np.log(p1), np.log(1 - p1)), rtol=1e-5)
    assert data["action"].dtype == np.int64 and set(np.unique(data["action"])) == {0, 1}


def test_continuous_normal_diagonal_and_the_readme_spelling() -> None:
    with SampleManager(Gaussian, "Pendulum-v1", 2, 200, returns=["log_prob"], action_sampling_type="continous_normal_diagonal",
                       model_kwargs={"scale": 3.0}, backend="local") as m:
        data = m.get_data()
    assert data["action"].dtype == np.float32 and data["action"].shape == (200, 1)
    assert np.abs(data["action"]).max() > 2.0  # stored as drawn (sigma 3), the env got them clipped to [-2, 2]
    a = data["action"][:, 0].astype(np.float64)
    np.testing.assert_allclose(data["log_prob"], -0.5 * (a / 3.0) ** 2 - np.log(3.0) - 0.5 * np.log(2 * np.pi), rtol=1e-5)
    settings = SamplingSettings("continuous_normal_diagonal", 0.0, 1.0, low=np.array([-2.0]), high=np.array([2.0]))
    out = ModelPolicy(Gaussian(10.0), settings, seed=0).act(np.zeros((50, 3), dtype=np.float32))
    assert np.abs(out.actions).max() > 2.0 and np.abs(out.to_env()).max() <= 2.0
    np.testing.assert_array_equal(out.to_env(), np.clip(out.actions, -2.0, 2.0))


def test_epsilon_one_is_uniform_and_set_epsilon_takes_effect() -> None:
    with manager(epsilon=1.0) as m:
        assert set(np.unique(m.get_data(total_steps=100)["action"])) == {0, 1}
        m.set_epsilon(0.0)
        assert (m.get_data(total_steps=100)["action"] == 1).all()


def test_wrong_arguments_say_how_to_fix() -> None:
    with pytest.raises(DaedalusError, match="epsilon_greedy"):
        manager(action_sampling_type="epsilon_greed")
    with pytest.raises(DaedalusError, match="monte_carlo"):
        manager(returns=["monte_carlo_return"])
    with pytest.raises(DaedalusError, match="total_steps"):
        manager(num_episodes=1)
    with pytest.raises(DaedalusError, match="continuous_normal_diagonal"):
        manager(action_sampling_type="continuous_normal_diagonal")  # a discrete env
    with manager(actin_sampling_type="thompson", env_config={}) as m:  # ReAllY's spellings
        assert m._settings.action_sampling_type == "thompson"


# --------------------------------------------------------------------------- buffer


def test_fifo_buffer_order_and_overflow() -> None:
    buffer = FifoBuffer(5, ["a", "b"], seed=0)
    buffer.put({"a": [0, 1, 2], "b": [10, 11, 12], "ignored": [0, 0, 0]})
    np.testing.assert_array_equal(buffer.data()["a"], [0, 1, 2])
    buffer.put({"a": [3, 4, 5, 6], "b": [13, 14, 15, 16]})
    np.testing.assert_array_equal(buffer.data()["a"], [2, 3, 4, 5, 6])  # 0 and 1 dropped first
    np.testing.assert_array_equal(buffer.data()["b"], [12, 13, 14, 15, 16])
    buffer.put({"a": np.arange(100, 107), "b": np.arange(200, 207)})  # more than the size: the newest 5
    np.testing.assert_array_equal(buffer.data()["a"], [102, 103, 104, 105, 106])
    assert len(buffer) == 5
    sample = buffer.sample(1000)
    np.testing.assert_array_equal(sample["b"] - sample["a"], np.full(1000, 100))  # rows stay together
    assert set(sample["a"]) == {102, 103, 104, 105, 106}
    with pytest.raises(DaedalusError, match="not_done"):
        buffer_keys = FifoBuffer(3, ["not_done"])
        buffer_keys.put({"not_dome": [1]})


def test_manager_buffer_and_fresh_samples() -> None:
    with manager() as m:
        m.initilize_buffer(20, optim_keys=["state", "reward", "not_done"])  # ReAllY's spelling
        first, second = m.get_data(), m.get_data()
        m.store_in_buffer(first)
        m.store_in_buffer(second)
        assert m.buffer is not None and len(m.buffer) == 20
        np.testing.assert_array_equal(m.buffer.data()["state"], np.concatenate([first["state"][-4:], second["state"]]))
        batch = m.sample(32)
        assert set(batch) == {"state", "reward", "not_done"} and batch["state"].shape == (32, 3)
        fresh = m.sample(6, from_buffer=False)
        assert len(fresh["reward"]) == 6 and "state_new" in fresh


# --------------------------------------------------------------------------- agent, files, test, aggregator


def test_agent_q_values_and_set_agent() -> None:
    with manager() as m:
        agent = m.get_agent()
        obs = np.zeros((4, 3), dtype=np.float32)
        np.testing.assert_array_equal(agent.max_q(obs).detach().numpy(), np.ones(4))
        np.testing.assert_array_equal(agent.q_val(obs, [0, 1, 0, 1]).detach().numpy(), [0, 1, 0, 1])
        assert agent.q_val(obs, [0, 1, 0, 1]).requires_grad  # usable in a loss
        weights = agent.get_weights()
        weights["q.bias"] = np.array([5.0, 0.0], dtype=np.float32)
        assert (m.get_data()["action"] == 1).all()
        m.set_agent(weights)
        assert (m.get_data()["action"] == 0).all()
        assert (m.get_agent().act(obs, deterministic=True) == 0).all()


def test_save_and_load_model_roundtrip_bitwise(tmp_path: Any) -> None:
    from safetensors.numpy import load_file

    with manager() as m:
        saved = m.get_agent().get_weights()
        file = m.save_model(tmp_path, epoch=3)
        assert file.name == "model_3.safetensors"
        assert {k: v.tobytes() for k, v in load_file(str(file)).items()} == {k: v.tobytes() for k, v in saved.items()}
        m.set_agent({k: np.random.default_rng(1).normal(size=v.shape).astype(v.dtype) for k, v in saved.items()})
        m.save_model(tmp_path, epoch=2)  # an older epoch, written later
        agent = m.load_model(tmp_path)  # the folder: the highest epoch wins
    assert {k: v.tobytes() for k, v in agent.get_weights().items()} == {k: v.tobytes() for k, v in saved.items()}


def test_test_returns_lengths_and_returns_per_episode() -> None:
    with manager() as m:
        lengths, returns = m.test(500, test_episodes=4, evaluation_measure="time_and_reward")
        # Episode i is reset with seed 10_000 + i: even seeds terminate after 3 steps, odd ones are cut at 5.
        assert lengths == [3, 5, 3, 5]
        assert returns == [3 * 10_002.0, 5 * 10_003.0, 3 * 10_004.0, 5 * 10_005.0]
        assert m.test(4, test_episodes=2, evaluation_measure="time") == [3, 4]  # seeds 10_004, 10_005; max_steps 4
        with pytest.raises(DaedalusError, match="time_and_reward"):
            m.test(5, evaluation_measure="rewards")


def test_aggregator_writes_png_and_csv_every_saving_after(tmp_path: Any) -> None:
    with manager() as m:
        m.initialize_aggregator(tmp_path / "agg", saving_after=3, aggregator_keys=["loss", "ret"], max_size=2)
        for i in range(7):
            m.update_aggregator(loss=[i, i + 2], ret=10 * i)
            names = sorted(p.name for p in (tmp_path / "agg").glob("*")) if (tmp_path / "agg").exists() else []
            if i == 1:
                assert names == []
            if i == 2:
                assert names == ["aggregator.csv", "progress_3.png"]
        assert sorted(p.name for p in (tmp_path / "agg").glob("*")) == ["aggregator.csv", "progress_3.png", "progress_6.png"]
        assert (tmp_path / "agg" / "progress_6.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        lines = (tmp_path / "agg" / "aggregator.csv").read_text().splitlines()
        assert lines == ["update,loss,ret", *(f"{i + 1},{i + 1.0},{10.0 * i}" for i in range(6))]
        assert m.aggregator is not None
        np.testing.assert_array_equal(m.aggregator.smoothed("ret"), [0, 5, 15, 25, 35, 45, 55])
        with pytest.raises(DaedalusError, match="loss"):
            m.update_aggregator(los=1.0)
        m.update_aggregator(loss=1.0)  # 8: no 'ret' this time
        m.update_aggregator(loss=1.0, ret=None)  # 9: written, 'ret' left out of the plot
        assert (tmp_path / "agg" / "aggregator.csv").read_text().splitlines()[-2:] == ["8,1.0,nan", "9,1.0,nan"]
        np.testing.assert_array_equal(m.aggregator.smoothed("ret")[-3:], [55.0, 60.0, np.nan])  # NaNs skipped in the window


def test_import_daedalus_stays_light() -> None:
    code = "import sys, daedalus; assert 'torch' not in sys.modules and 'ray' not in sys.modules; print(daedalus.SampleManager.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "SampleManager", result.stderr


# --------------------------------------------------------------------------- Ray


@pytest.fixture
def ray_manager(ray_cluster: Any) -> Any:
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the model class travels by value
    built: list[SampleManager] = []

    def build(**kwargs: Any) -> SampleManager:
        built.append(manager("ray", cpus_per_worker=0.01, **kwargs))
        return built[-1]

    yield build
    for m in built:
        m.close()


def test_ray_collects_what_local_collects(ray_manager: Any) -> None:
    import ray

    m = ray_manager(returns=["monte_carlo", "value_estimate"], gamma=0.5, model_kwargs={"value": 10.0})
    remote = m.get_data()
    with manager(returns=["monte_carlo", "value_estimate"], gamma=0.5, model_kwargs={"value": 10.0}) as local_manager:
        local = local_manager.get_data()
    assert set(remote) == set(local)
    for key in local:
        np.testing.assert_array_equal(remote[key], local[key], err_msg=key)
    m.close()
    assert ray.is_initialized()  # the session's cluster: joined, not stopped


def test_set_agent_reaches_the_workers(ray_manager: Any) -> None:
    m = ray_manager(model_kwargs={"bias": (1.0, 0.0)})
    data = m.get_data()
    assert (data["action"] == 0).all()
    np.testing.assert_array_equal(data["reward"], [1.0] * 8 + [2.0] * 8)  # 1 + action + seed
    weights = m.get_agent().get_weights()
    weights["q.bias"] = np.array([0.0, 1.0], dtype=np.float32)
    m.set_agent(weights)
    data = m.get_data()
    assert (data["action"] == 1).all()
    m.set_epsilon(1.0)  # travels with the weights
    assert set(np.unique(m.get_data(total_steps=200)["action"])) == {0, 1}
