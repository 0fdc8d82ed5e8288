"""Demonstrations: the on-disk format, transitions, the loaders of other tools' files, and the BC loss.

Every loader is fed a small hand-made file and checked against the exact numbers written into it.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from daedalus.demos import Demonstrations, Episode
from daedalus.errors import DaedalusError, MissingDependencyError


def two_episodes() -> Demonstrations:
    """Episode 0: 2 steps, terminated; episode 1: 1 step, truncated. Observations are 2-vectors."""
    first = Episode(
        obs=np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], np.float32), actions=np.array([1, 0]),
        rewards=np.array([1.0, 0.5], np.float32), terminated=True,
    )
    second = Episode(obs=np.array([[6.0, 7.0], [8.0, 9.0]], np.float32), actions=np.array([1]), rewards=np.array([2.0], np.float32), truncated=True)
    box = spaces.Box(-10.0, 10.0, (2,), np.float32)
    return Demonstrations.from_episodes([first, second], box, spaces.Discrete(2), {"env_id": "Test-v0", "seed": 3})


# --------------------------------------------------------------------------- format


def test_save_load_round_trip(tmp_path: Path) -> None:
    demos = two_episodes()
    demos.save(tmp_path / "d")
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["demos.json", "demos.safetensors"]
    back = Demonstrations.load(tmp_path / "d")
    np.testing.assert_array_equal(back.obs, demos.obs)
    np.testing.assert_array_equal(back.actions, [1, 0, 1])
    np.testing.assert_array_equal(back.rewards, [1.0, 0.5, 2.0])
    np.testing.assert_array_equal(back.episode_lengths, [2, 1])
    assert back.terminated.tolist() == [True, False] and back.truncated.tolist() == [False, True]
    assert back.observation_space == demos.observation_space and back.action_space == spaces.Discrete(2)
    assert back.info == {"env_id": "Test-v0", "seed": 3}
    assert back.episode_returns.tolist() == [1.5, 2.0]
    # from_dataset reads Daedalus's own folder too.
    np.testing.assert_array_equal(Demonstrations.from_dataset(tmp_path / "d").obs, demos.obs)


def test_transitions_exact_values() -> None:
    t = two_episodes().transitions()
    np.testing.assert_array_equal(t.obs, [[0, 1], [2, 3], [6, 7]])
    np.testing.assert_array_equal(t.next_obs, [[2, 3], [4, 5], [8, 9]])
    np.testing.assert_array_equal(t.actions, [1, 0, 1])
    np.testing.assert_array_equal(t.rewards, [1.0, 0.5, 2.0])
    assert t.terminated.tolist() == [False, True, False]  # episode 1 was truncated, not terminated
    assert t.last.tolist() == [False, True, True]


def test_take_keeps_the_first_episodes() -> None:
    first = two_episodes().take(1)
    assert len(first) == 1 and first.num_steps == 2 and first.obs.shape == (3, 2)


# --------------------------------------------------------------------------- imitation npz


def imitation_arrays(with_rewards: bool = True) -> dict[str, np.ndarray]:
    """What imitation's types.save writes for trajectories of 2 and 3 steps (obs: one more row each)."""
    arrays = {
        "obs": np.arange(7 * 2, dtype=np.float32).reshape(7, 2),
        "acts": np.array([0, 1, 1, 0, 1]),
        "infos": np.array([{}, {"x": 1}, {}, {}, {}], dtype=object),  # a pickle: must never be read
        "terminal": np.array([True, False]),
        "indices": np.array([2]),
    }
    if with_rewards:
        arrays["rews"] = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32)
    return arrays


def test_imitation_npz(tmp_path: Path) -> None:
    np.savez_compressed(tmp_path / "trajs.npz", **imitation_arrays())
    demos = Demonstrations.from_dataset(tmp_path / "trajs.npz")
    assert demos.episode_lengths.tolist() == [2, 3]
    np.testing.assert_array_equal(demos.obs, np.arange(14, dtype=np.float32).reshape(7, 2))
    np.testing.assert_array_equal(demos.actions, [0, 1, 1, 0, 1])
    assert demos.episode_returns.tolist() == [3.0, 12.0]
    assert demos.terminated.tolist() == [True, False] and demos.truncated.tolist() == [False, True]
    assert demos.info["format"] == "imitation-npz"
    # The second trajectory starts at observation row 3 (2 steps + 1 final observation before it).
    np.testing.assert_array_equal(demos.transitions().obs[2], [6.0, 7.0])


def test_imitation_npz_without_rewards_gets_zero_rewards(tmp_path: Path) -> None:
    np.savez(tmp_path / "t.npz", **imitation_arrays(with_rewards=False))
    demos = Demonstrations.from_dataset(tmp_path / "t.npz")
    assert demos.rewards.tolist() == [0.0] * 5 and "missing" in demos.info["rewards"]


def test_folder_of_npz_files_is_concatenated(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", **imitation_arrays())
    np.savez(tmp_path / "b.npz", **imitation_arrays())
    demos = Demonstrations.from_dataset(tmp_path)
    assert demos.episode_lengths.tolist() == [2, 3, 2, 3] and len(demos.obs) == 14 and demos.info["files"] == 2


def test_npz_with_object_arrays_is_refused(tmp_path: Path) -> None:
    arrays = imitation_arrays()
    arrays["obs"] = np.array([np.zeros(2)] * 6 + [None], dtype=object)
    np.savez(tmp_path / "evil.npz", **arrays)
    with pytest.raises(DaedalusError, match="array 'obs' holds Python objects.*never unpickles"):
        Demonstrations.from_dataset(tmp_path / "evil.npz")


# --------------------------------------------------------------------------- rl-zoo record_expert npz


def test_episode_starts_npz(tmp_path: Path) -> None:
    np.savez(
        tmp_path / "expert.npz",
        obs=np.array([[0.0], [1.0], [2.0], [10.0], [11.0]], np.float32),
        actions=np.array([[0.5], [0.25], [0.0], [-1.0], [1.0]], np.float32),
        rewards=np.array([1.0, 1.0, 1.0, -2.0, 4.0]),
        episode_returns=np.array([3.0, 2.0]),
        episode_starts=np.array([True, False, False, True, False]),
    )
    demos = Demonstrations.from_dataset(tmp_path / "expert.npz")
    assert demos.episode_lengths.tolist() == [3, 2]
    # No final observation is recorded: each episode's last one is repeated.
    np.testing.assert_array_equal(demos.obs[:, 0], [0, 1, 2, 2, 10, 11, 11])
    np.testing.assert_array_equal(demos.actions[:, 0], [0.5, 0.25, 0.0, -1.0, 1.0])
    assert demos.episode_returns.tolist() == [3.0, 2.0]
    assert demos.truncated.tolist() == [True, True] and not demos.terminated.any()
    np.testing.assert_array_equal(demos.transitions().next_obs[:, 0], [1, 2, 2, 11, 11])


def test_unknown_npz_and_missing_paths_say_what_is_expected(tmp_path: Path) -> None:
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DaedalusError, match="not a demonstrations npz.*'x'"):
        Demonstrations.from_dataset(tmp_path / "other.npz")
    with pytest.raises(DaedalusError, match="do not exist.*demos record"):
        Demonstrations.from_dataset(tmp_path / "nowhere")


# --------------------------------------------------------------------------- Minari


def test_minari_without_h5py_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ds" / "data").mkdir(parents=True)
    (tmp_path / "ds" / "data" / "main_data.hdf5").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py -> ImportError
    with pytest.raises(MissingDependencyError, match=r"h5py.*daedalus\[minari\]"):
        Demonstrations.from_dataset(tmp_path / "ds")


def test_minari_hdf5(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    (tmp_path / "ds" / "data").mkdir(parents=True)
    with h5py.File(tmp_path / "ds" / "data" / "main_data.hdf5", "w") as f:
        f.attrs["observation_space"] = '{"type": "Box", "dtype": "float32", "shape": [1], "low": [-5.0], "high": [5.0]}'
        f.attrs["action_space"] = '{"type": "Discrete", "dtype": "int64", "start": 0, "n": 3}'
        for index, (length, terminal) in enumerate([(2, True), (1, False)]):
            group = f.create_group(f"episode_{index}")
            group["observations"] = np.arange(length + 1, dtype=np.float32).reshape(-1, 1) + 10 * index
            group["actions"] = np.full(length, index + 1)
            group["rewards"] = np.full(length, 0.5 + index)
            group["terminations"] = np.array([False] * (length - 1) + [terminal])
            group["truncations"] = np.array([False] * (length - 1) + [not terminal])
    demos = Demonstrations.from_dataset(tmp_path / "ds")
    assert demos.episode_lengths.tolist() == [2, 1]
    np.testing.assert_array_equal(demos.obs[:, 0], [0, 1, 2, 10, 11])
    np.testing.assert_array_equal(demos.actions, [1, 1, 2])
    assert demos.episode_returns.tolist() == [1.0, 1.5]
    assert demos.terminated.tolist() == [True, False] and demos.truncated.tolist() == [False, True]
    assert demos.action_space == spaces.Discrete(3) and demos.observation_space.shape == (1,)


# --------------------------------------------------------------------------- the BC loss


def test_bc_loss_categorical_by_hand() -> None:
    from daedalus.algos.bc import BCBatch, bc_loss
    from daedalus.nn.networks import ActorCritic

    network = ActorCritic(2, spaces.Discrete(2), hidden_sizes=())
    with torch.no_grad():
        network.actor_head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        network.actor_head.bias.zero_()
    batch = BCBatch(obs=torch.tensor([[1.0, 0.0], [0.0, 1.0]]), actions=torch.tensor([0, 0]))
    loss, metrics = bc_loss(batch, network, ent_weight=0.1, l2_weight=0.01)
    # Logits [1, 0] and [0, 2]; both steps demonstrate action 0.
    e = math.e
    logp = [1 - math.log(1 + e), -math.log(1 + e**2)]
    neglogp = -(logp[0] + logp[1]) / 2

    def entropy(p: float) -> float:
        return -(p * math.log(p) + (1 - p) * math.log(1 - p))

    mean_entropy = (entropy(e / (1 + e)) + entropy(1 / (1 + e**2))) / 2
    l2 = (1.0 + 4.0) / 2  # ||W||^2 / 2; the bias is zero
    assert metrics["bc/neglogp"].item() == pytest.approx(neglogp, rel=1e-6)
    assert metrics["bc/entropy"].item() == pytest.approx(mean_entropy, rel=1e-6)
    assert metrics["bc/l2"].item() == pytest.approx(l2, rel=1e-6)
    assert loss.item() == pytest.approx(neglogp - 0.1 * mean_entropy + 0.01 * l2, rel=1e-6)
    assert metrics["bc/accuracy"].item() == 0.5  # argmax is 0, then 1


def test_bc_loss_gaussian_by_hand() -> None:
    from daedalus.algos.bc import BCBatch, bc_loss
    from daedalus.nn.networks import ActorCritic

    network = ActorCritic(1, spaces.Box(-2.0, 2.0, (1,), np.float32), hidden_sizes=(), log_std_init=0.5)
    with torch.no_grad():
        network.actor_head.weight.fill_(2.0)
        network.actor_head.bias.fill_(-1.0)
    batch = BCBatch(obs=torch.tensor([[1.0], [0.0]]), actions=torch.tensor([[1.5], [-1.0]]))
    loss, metrics = bc_loss(batch, network, ent_weight=0.0, l2_weight=1.0)
    sigma = math.exp(0.5)
    means, actions = [1.0, -1.0], [1.5, -1.0]
    logps = [-0.5 * ((a - m) / sigma) ** 2 - 0.5 - 0.5 * math.log(2 * math.pi) for a, m in zip(actions, means, strict=True)]
    l2 = (4.0 + 1.0 + 0.25) / 2  # weight, bias and log-std
    assert metrics["bc/neglogp"].item() == pytest.approx(-sum(logps) / 2, rel=1e-6)
    assert metrics["bc/entropy"].item() == pytest.approx(0.5 + 0.5 + 0.5 * math.log(2 * math.pi), rel=1e-6)
    assert loss.item() == pytest.approx(-sum(logps) / 2 + l2, rel=1e-6)
    assert "bc/accuracy" not in metrics


def test_bc_optimizer_holds_the_policy_only() -> None:
    from daedalus.algos.bc import BCConfig, make_bc_agent, policy_parameters

    agent = make_bc_agent(spaces.Box(-1.0, 1.0, (3,), np.float32), spaces.Discrete(2), BCConfig(hidden_sizes=[8]), seed=0)
    assert agent.optimizer.params == policy_parameters(agent.network)
    assert all(p is not q for p in agent.optimizer.params for q in agent.network.critic_head.parameters())
