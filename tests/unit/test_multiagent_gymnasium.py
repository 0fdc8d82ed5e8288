"""Gymnasium envs as the one-agent case of multi-agent training.

A Gymnasium env in a profile with ``policies`` is wrapped as a PettingZoo Parallel env with one
agent (:class:`~daedalus.envs.pettingzoo.GymnasiumAsParallel`) and trained as a PolicySet. The
check: CartPole through the multi-agent path sees the same episodes, evaluates alike and ends
with the same weights, bit for bit, as through the single-agent path with the same seed.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import daedalus
from daedalus import api
from daedalus.config import profile_from_dict
from daedalus.envs.make import env_factory_for
from daedalus.envs.pettingzoo import (
    GymnasiumAsParallel,
    NamedMultiAgentVecEnv,
    env_api,
    is_pettingzoo,
)
from daedalus.envs.vector import make_vec_env
from daedalus.errors import DaedalusError
from daedalus.hooks import EvalEnd

# --------------------------------------------------------------------------- the adapter


def test_adapter_is_a_one_agent_parallel_env() -> None:
    env = GymnasiumAsParallel(gym.make("CartPole-v1"))
    assert is_pettingzoo(env) and env_api(env) == "parallel"
    assert env.possible_agents == ["agent_0"] and env.agents == []  # no episode before reset
    inner = env.env
    assert env.observation_space("agent_0") is inner.observation_space and env.action_space("agent_0") is inner.action_space
    with pytest.raises(DaedalusError, match="one agent, 'agent_0'; got 'agent_1'"):
        env.observation_space("agent_1")
    with pytest.raises(DaedalusError, match="call reset"):
        env.step({"agent_0": 0})
    obs, infos = env.reset(seed=7)
    assert env.agents == ["agent_0"] and set(obs) == set(infos) == {"agent_0"}
    # Step for step what the plain env does from the same seed.
    plain = gym.make("CartPole-v1")
    plain_obs, _ = plain.reset(seed=7)
    np.testing.assert_array_equal(obs["agent_0"], plain_obs)
    steps = 0
    while env.agents:
        obs, rewards, terminated, truncated, _ = env.step({"agent_0": 1})
        plain_obs, reward, plain_terminated, plain_truncated, _ = plain.step(1)
        steps += 1
        np.testing.assert_array_equal(obs["agent_0"], plain_obs)
        assert (rewards, terminated, truncated) == ({"agent_0": reward}, {"agent_0": plain_terminated}, {"agent_0": plain_truncated})
        assert env.agents == ([] if plain_terminated or plain_truncated else ["agent_0"])
    assert plain_terminated and steps < 500  # always pushing right ends the episode early
    with pytest.raises(DaedalusError, match="call reset"):
        env.step({"agent_0": 0})
    named = GymnasiumAsParallel(gym.make("CartPole-v1"), agent="pole")
    named.reset(seed=0)
    assert named.possible_agents == ["pole"]
    with pytest.raises(DaedalusError, match="needs an action for 'pole'"):
        named.step({"agent_0": 0})
    with pytest.raises(DaedalusError, match="wraps a Gymnasium env"):
        GymnasiumAsParallel(env)  # type: ignore[arg-type]


def test_adapter_passes_pettingzoo_parallel_api_test() -> None:
    parallel_test = pytest.importorskip("pettingzoo.test")
    parallel_test.parallel_api_test(GymnasiumAsParallel(gym.make("CartPole-v1")), num_cycles=600)


def _profile(**fields: Any) -> Any:
    return profile_from_dict("p", {"agent_id": "ppo", "env_id": "CartPole-v1", **fields})


def test_copies_step_exactly_as_the_single_agent_sync_vector_env() -> None:
    # Short episodes, so that many end (terminated and truncated) and copies reset with seed=None.
    env_args = {"max_episode_steps": 12}
    single = make_vec_env(env_factory_for(_profile(env_args=env_args)), 4, "CartPole-v1", env_args, "sync", seed=3)
    multi = NamedMultiAgentVecEnv(env_factory_for(_profile(env_args=env_args, policies={"solo": {}})), 4, {"solo": ["agent_0"]}, seed=3)
    try:
        obs, _ = single.reset(seed=3)  # as the rollout worker resets it
        np.testing.assert_array_equal(multi.reset(seed=3)["solo"], obs)
        actions = np.random.default_rng(0).integers(0, 2, size=(300, 4))
        ended = {"terminated": 0, "truncated": 0}
        for step_actions in actions:
            obs, rewards, terminated, truncated, info = single.step(step_actions)
            result = multi.step({"solo": step_actions})["solo"]
            assert result.obs.dtype == obs.dtype == np.float32
            np.testing.assert_array_equal(result.obs, obs)
            np.testing.assert_array_equal(result.rewards, rewards.astype(np.float32))
            np.testing.assert_array_equal(result.terminated, terminated)
            np.testing.assert_array_equal(result.truncated, truncated)
            assert result.valid.all()
            for row in np.flatnonzero(terminated | truncated):
                np.testing.assert_array_equal(result.final_obs[row], info["final_obs"][row])
            ended["terminated"] += int(terminated.sum())
            ended["truncated"] += int(truncated.sum())
        assert ended["terminated"] > 10 and ended["truncated"] > 10
    finally:
        single.close()
        multi.close()


# --------------------------------------------------------------------------- profiles


def test_a_gymnasium_profile_with_policies_resolves_to_one_agent() -> None:
    wrappers = [{"id": "TimeLimit", "args": {"max_episode_steps": 5}}]
    resolved = api.validate(_profile(policies={"solo": {}}, wrappers=wrappers))
    assert resolved.groups == {"solo": ["agent_0"]}
    observation_space, action_space = resolved.group_spaces["solo"]
    assert observation_space.shape == (4,) and action_space == gym.spaces.Discrete(2)
    # The profile's wrappers apply to the Gymnasium env, inside the adapter.
    env = resolved.make_env(0)
    assert isinstance(env, GymnasiumAsParallel)
    env.reset(seed=0)
    truncations = [env.step({"agent_0": step % 2})[3]["agent_0"] for step in range(5)]
    assert truncations == [False] * 4 + [True] and env.agents == []
    # Without policies the same profile stays single-agent.
    assert api.validate(_profile(wrappers=wrappers)).groups is None


# --------------------------------------------------------------------------- the equality check


class _Evaluations:
    """Every periodic evaluation's episode returns."""

    def __init__(self) -> None:
        self.returns: list[tuple[int, tuple[float, ...]]] = []

    def on_eval(self, info: EvalEnd) -> None:
        self.returns.append((info.step, info.returns))


def _train(workdir: Path, env_id: str, config: dict[str, Any], **fields: Any) -> tuple[Any, _Evaluations]:
    evaluations = _Evaluations()
    name = "multi" if "policies" in fields else "single"
    result = daedalus.train(
        agent_id="ppo", env_id=env_id, num_envs=4, seed=3, rollout={"vectorization": "sync"}, config=config,
        runs_dir=workdir / name, callbacks=[evaluations], **fields,
    )
    assert result.status == "completed"
    return result, evaluations


def _training_returns(run: Any) -> list[tuple[str, str]]:
    with open(run.path / "metrics.csv") as file:
        return [(row["step"], row["charts/episode_return"]) for row in csv.DictReader(file) if row.get("charts/episode_return")]


def _weights(run: Any) -> dict[str, torch.Tensor]:
    return load_file(str(run.path / "checkpoints" / "final" / "weights.safetensors"))


CARTPOLE = {
    "total_steps": 4096, "num_steps": 32, "num_minibatches": 4, "update_epochs": 4, "learning_rate": 5.0e-3,
    "gamma": 0.98, "gae_lambda": 0.8, "normalize_obs": False, "torch_threads": 1, "log_every_steps": 256,
    "eval_every_steps": 1024, "eval_episodes": 4, "final_eval_episodes": 12, "checkpoint_every_steps": 0,
}


def test_cartpole_through_the_multi_agent_path_is_the_single_agent_run(workdir: Path) -> None:
    single, single_evals = _train(workdir, "CartPole-v1", CARTPOLE)
    multi, multi_evals = _train(workdir, "CartPole-v1", CARTPOLE, policies={"solo": {}})
    # The same episodes during training: every logged trailing mean of the episode return.
    returns = _training_returns(single)
    assert len(returns) == CARTPOLE["total_steps"] // CARTPOLE["log_every_steps"]
    assert _training_returns(multi) == returns
    assert single.artifacts["evaluations"][-1]["mean_return"] > 3 * float(returns[0][1])  # it learned something
    # The same final weights, optimizer state and RNG states, bit for bit ("solo::" + the single agent's names).
    a, b = _weights(single), _weights(multi)
    assert {f"solo::{name}" for name in a} == set(b)
    assert all(torch.equal(a[name], b[f"solo::{name}"]) for name in a)
    # Periodic and final evaluations: the same episodes, in the same order (episode i seeded
    # seed + i on both paths; the final evaluation's 12 episodes take two waves of copies).
    assert [step for step, _ in multi_evals.returns] == [step for step, _ in single_evals.returns] == [1024, 2048, 3072, 4096]
    for (_, ours), (_, theirs) in zip(multi_evals.returns, single_evals.returns, strict=True):
        assert list(ours) == list(theirs)
    for ours, theirs in zip(multi.artifacts["evaluations"], single.artifacts["evaluations"], strict=True):
        assert ours["mean_return"] == theirs["mean_return"]
        assert ours["std_return"] == pytest.approx(theirs["std_return"], rel=1e-12, abs=1e-12)
    assert multi.artifacts["final_evaluation"]["team_returns"] == single.artifacts["final_evaluation"]["returns"]


def test_pendulum_trains_identically(workdir: Path) -> None:
    # Box actions, and every episode truncated at 200 steps (bootstrapped from its final observation).
    config = {**CARTPOLE, "total_steps": 1664, "learning_rate": 1.0e-3, "eval_every_steps": 0, "final_eval_episodes": 0}
    single, _ = _train(workdir, "Pendulum-v1", config)
    multi, _ = _train(workdir, "Pendulum-v1", config, policies={"solo": {}})
    a, b = _weights(single), _weights(multi)
    assert all(torch.equal(a[name], b[f"solo::{name}"]) for name in a)
    # Both paths sum the rewards as stored (float32): the same episode returns, to the bit.
    single_returns, multi_returns = _training_returns(single), _training_returns(multi)
    assert len(single_returns) == len(multi_returns) > 0
    assert multi_returns == single_returns
