"""NamedMultiAgentVecEnv and make_pettingzoo on real PettingZoo envs (MPE2, classic, SISL).

Expected numbers come from the same env stepped by hand (its own API, no Daedalus code) or
from a small env written here whose rewards are summed by hand.
"""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("pettingzoo", reason="needs the 'ma' extra: pip install -e '.[ma]'")
pytest.importorskip("mpe2", reason="needs the 'ma' extra: pip install -e '.[ma]'")

from pettingzoo import AECEnv, ParallelEnv  # noqa: E402

from daedalus.envs.pettingzoo import (  # noqa: E402
    NamedMultiAgentVecEnv,
    env_api,
    is_aec,
    is_pettingzoo,
    make_pettingzoo,
    parse_row_name,
    row_name,
)
from daedalus.errors import DaedalusError, MissingDependencyError  # noqa: E402

SPREAD = {"agents": ["agent_0", "agent_1", "agent_2"]}
TAG = {"predator": ["adversary_0", "adversary_1", "adversary_2"], "prey": ["agent_0"]}
TICTACTOE = {"x": ["player_1"], "o": ["player_2"]}


def factory(ref, api="auto", **env_args):
    return lambda seed: make_pettingzoo(ref, env_args, api=api)


# --------------------------------------------------------------------------- make_pettingzoo


def test_make_pettingzoo_picks_parallel_for_simultaneous_and_aec_for_turn_based():
    spread = make_pettingzoo("mpe2:simple_spread_v3", {"N": 2})
    assert is_pettingzoo(spread) and not is_aec(spread) and env_api(spread) == "parallel"
    assert spread.possible_agents == ["agent_0", "agent_1"]
    tictactoe = make_pettingzoo("pettingzoo.classic:tictactoe_v3", {})
    assert is_aec(tictactoe) and env_api(tictactoe) == "aec"
    # Naming the constructor, or api=, picks the other API.
    assert is_aec(make_pettingzoo("mpe2:simple_spread_v3.env", {}))
    assert is_aec(make_pettingzoo("mpe2:simple_spread_v3", {}, api="aec"))
    with pytest.raises(DaedalusError, match="has no parallel version"):
        make_pettingzoo("pettingzoo.classic:tictactoe_v3", {}, api="parallel")


def test_make_pettingzoo_errors_are_clear(monkeypatch):
    with pytest.raises(DaedalusError, match="rejected env_args"):
        make_pettingzoo("mpe2:simple_spread_v3", {"no_such_arg": 1})
    with pytest.raises(DaedalusError, match="not of the form 'module:env'"):
        make_pettingzoo("simple_spread_v3", {})
    with pytest.raises(DaedalusError, match="has no 'simple_nothing_v1'"):
        make_pettingzoo("mpe2:simple_nothing_v1", {})
    with pytest.raises(DaedalusError, match="Unknown PettingZoo api"):
        make_pettingzoo("mpe2:simple_spread_v3", {}, api="turns")
    monkeypatch.setitem(sys.modules, "mpe2", None)  # as if MPE2 were not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'daedalus\[ma\]'") as info:
        make_pettingzoo("mpe2:simple_spread_v3", {})
    assert info.value.package == "mpe2" and "\n" not in str(info.value)


def test_env_api_rejects_objects_of_no_known_api():
    assert env_api(gym.make("CartPole-v1")) == "gymnasium"
    with pytest.raises(DaedalusError, match="neither a Gymnasium env .* PettingZoo"):
        env_api(object(), "my_pkg:make_env")
    with pytest.raises(DaedalusError, match="needs PettingZoo envs"):
        NamedMultiAgentVecEnv(lambda seed: gym.make("CartPole-v1"), 1, {"default": ["agent"]})


def test_row_names_round_trip():
    assert row_name("pursuer_0", 3) == "pursuer_0&env=3"
    assert parse_row_name("pursuer_0&env=3") == ("pursuer_0", 3)
    with pytest.raises(DaedalusError):
        parse_row_name("pursuer_0")


# --------------------------------------------------------------------------- MPE2 (Parallel)


def test_simple_spread_matches_the_env_stepped_by_hand():
    num_envs, seed, cycles = 2, 5, 4
    envs = NamedMultiAgentVecEnv(factory("mpe2:simple_spread_v3", max_cycles=cycles), num_envs, SPREAD, seed=seed)
    assert envs.row_names["agents"] == [f"agent_{k}&env={c}" for c in range(2) for k in range(3)]
    assert envs.num_rows == {"agents": 6} and envs.possible_agents == SPREAD["agents"]
    assert envs.observation_spaces["agents"].shape == (18,) and envs.action_spaces["agents"] == gym.spaces.Discrete(5)
    assert envs.action_masks("agents") is None
    actions = np.random.default_rng(0).integers(0, 5, size=(cycles, num_envs * 3))

    # The reference: each copy as a plain PettingZoo env, reset with seed + copy.
    refs = [make_pettingzoo("mpe2:simple_spread_v3", {"max_cycles": cycles}) for _ in range(num_envs)]
    ref_obs = [ref.reset(seed=seed + c)[0] for c, ref in enumerate(refs)]
    ref_returns = np.zeros((num_envs, 3))

    obs = envs.reset()["agents"]
    for t in range(cycles):
        for c in range(num_envs):
            for k, agent in enumerate(SPREAD["agents"]):
                np.testing.assert_array_equal(obs[c * 3 + k], ref_obs[c][agent])
        step = envs.step({"agents": actions[t]})["agents"]
        for c, ref in enumerate(refs):
            ref_obs[c], rewards, _, truncations, _ = ref.step(
                {agent: int(actions[t, c * 3 + k]) for k, agent in enumerate(SPREAD["agents"])}
            )
            for k, agent in enumerate(SPREAD["agents"]):
                assert step.rewards[c * 3 + k] == np.float32(rewards[agent])
                ref_returns[c, k] += rewards[agent]
        assert step.valid.all() and step.rewards.dtype == np.float32
        obs = step.obs
        if t < cycles - 1:
            assert not step.truncated.any() and step.episode_returns.size == 0 and step.team_returns.size == 0
    # The last step truncated every agent of both copies; copies were reset in the same step.
    assert step.truncated.all() and not step.terminated.any()
    for c in range(num_envs):
        for k, agent in enumerate(SPREAD["agents"]):
            np.testing.assert_array_equal(step.final_obs[c * 3 + k], ref_obs[c][agent])
    assert not np.array_equal(step.obs, step.final_obs)
    np.testing.assert_array_equal(step.episode_rows, np.arange(6))
    np.testing.assert_allclose(step.episode_returns, ref_returns.reshape(-1))
    np.testing.assert_array_equal(step.episode_lengths, [cycles] * 6)
    np.testing.assert_allclose(step.team_returns, ref_returns.sum(axis=1))
    np.testing.assert_array_equal(step.team_lengths, [cycles, cycles])
    np.testing.assert_array_equal(step.ended_copies, [0, 1])
    envs.close()


def test_reset_seeds_copy_i_with_seed_plus_i():
    envs = NamedMultiAgentVecEnv(factory("mpe2:simple_spread_v3"), 3, SPREAD, seed=0)
    first = envs.reset(seed=10)["agents"]
    again = envs.reset(seed=10)["agents"]
    np.testing.assert_array_equal(first, again)
    ref = make_pettingzoo("mpe2:simple_spread_v3", {})
    obs, _ = ref.reset(seed=12)
    np.testing.assert_array_equal(first[6], obs["agent_0"])
    assert not np.array_equal(first[0], first[3])


def test_one_hot_agent_id_is_appended():
    envs = NamedMultiAgentVecEnv(factory("mpe2:simple_spread_v3"), 2, SPREAD, seed=0, one_hot_agent_id=True)
    plain = NamedMultiAgentVecEnv(factory("mpe2:simple_spread_v3"), 2, SPREAD, seed=0)
    assert envs.observation_spaces["agents"].shape == (21,)
    obs, ref = envs.reset()["agents"], plain.reset()["agents"]
    assert obs.shape == (6, 21) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[:, :18], ref)
    np.testing.assert_array_equal(obs[:, 18:], np.tile(np.eye(3), (2, 1)))
    assert envs.observation_spaces["agents"].contains(obs[0])


def test_simple_tag_groups_by_prefix_and_mixed_spaces_are_refused():
    envs = NamedMultiAgentVecEnv(factory("mpe2:simple_tag_v3", max_cycles=3), 2, TAG, seed=0)
    obs = envs.reset()
    assert obs["predator"].shape == (6, 16) and obs["prey"].shape == (2, 14)
    assert envs.row_names["prey"] == ["agent_0&env=0", "agent_0&env=1"]
    assert envs.row_names["predator"][3] == "adversary_0&env=1"
    for _ in range(3):
        steps = envs.step({"predator": np.ones(6, dtype=np.int64), "prey": np.zeros(2, dtype=np.int64)})
    assert steps["predator"].truncated.all() and steps["prey"].truncated.all()
    team = steps["predator"].episode_returns.reshape(2, 3).sum(axis=1) + steps["prey"].episode_returns
    np.testing.assert_allclose(steps["prey"].team_returns, team)
    np.testing.assert_array_equal(steps["predator"].team_returns, steps["prey"].team_returns)

    together = {"everyone": ["adversary_0", "adversary_1", "adversary_2", "agent_0"]}
    with pytest.raises(DaedalusError, match=r"separate groups") as info:
        NamedMultiAgentVecEnv(factory("mpe2:simple_tag_v3"), 1, together)
    assert "adversary_0: observation Box" in str(info.value) and "agent_0: observation Box" in str(info.value)
    assert "(16,)" in str(info.value) and "(14,)" in str(info.value)


def test_group_mistakes_are_all_reported_at_once():
    with pytest.raises(DaedalusError) as info:
        NamedMultiAgentVecEnv(
            factory("mpe2:simple_tag_v3"), 1, {"predator": ["adversary_0", "adversary_1", "adversry_2"], "prey": ["agent_0", "adversary_1"]}
        )
    message = str(info.value)
    assert "'adversry_2', which is not a possible agent" in message and "Did you mean 'adversary_2'" in message
    assert "agent 'adversary_1' is in groups 'predator' and 'prey'" in message
    assert "adversary_2 are in no group" in message


def test_aec_mode_returns_equal_parallel_mode_returns():
    """MPE as an AEC env: one agent per vector step, rewards arrive on later (invalid) steps."""
    cycles = 3
    actions = np.random.default_rng(1).integers(0, 5, size=(cycles, 3))
    parallel = NamedMultiAgentVecEnv(factory("mpe2:simple_spread_v3", max_cycles=cycles), 1, SPREAD, seed=7)
    parallel.reset()
    for t in range(cycles):
        expected = parallel.step({"agents": actions[t]})["agents"]

    aec = NamedMultiAgentVecEnv(factory("mpe2:simple_spread_v3", "aec", max_cycles=cycles), 1, SPREAD, seed=7)
    assert aec.is_aec
    aec.reset()
    # What a learner does: move every reward of an invalid step onto the row's last valid step.
    credited = np.zeros((cycles, 3))
    turns_taken = np.zeros(3, dtype=int)
    for t in range(cycles):
        for k in range(3):
            np.testing.assert_array_equal(aec.acting("agents"), np.arange(3) == k)
            step = aec.step({"agents": actions[t]})["agents"]
            np.testing.assert_array_equal(step.valid, np.arange(3) == k)
            turns_taken += step.valid
            for row in range(3):
                credited[turns_taken[row] - 1, row] += step.rewards[row] if turns_taken[row] else 0.0
                assert turns_taken[row] or step.rewards[row] == 0.0
    assert step.truncated.all()
    np.testing.assert_allclose(step.episode_returns, expected.episode_returns, rtol=1e-6)
    np.testing.assert_array_equal(step.episode_lengths, [cycles] * 3)
    np.testing.assert_allclose(step.team_returns, expected.team_returns, rtol=1e-6)
    np.testing.assert_array_equal(step.team_lengths, [cycles * 3])
    np.testing.assert_allclose(credited.sum(axis=0), expected.episode_returns, rtol=1e-6)


# --------------------------------------------------------------------------- classic (AEC)


def test_tictactoe_turns_rewards_and_final_observations():
    envs = NamedMultiAgentVecEnv(factory("pettingzoo.classic:tictactoe_v3"), 2, TICTACTOE, seed=0)
    obs = envs.reset()
    assert envs.observation_spaces["x"] == gym.spaces.Box(0, 1, (3, 3, 2), np.int8)
    assert obs["x"].shape == (2, 3, 3, 2) and obs["x"].dtype == np.int8
    # Copy 0: x takes the top row (0, 1, 2) and wins with its third move. Copy 1: x plays 0, 1, 6
    # and o the middle row (3, 4, then 5 below), so o wins there one turn later.
    plays = [("x", [0, 0]), ("o", [3, 3]), ("x", [1, 1]), ("o", [4, 4]), ("x", [2, 6])]
    steps = []
    for mover, squares in plays:
        actions = {"x": np.zeros(2, dtype=np.int64), "o": np.zeros(2, dtype=np.int64)}
        actions[mover] = np.array(squares)
        steps.append(envs.step(actions))
    # Turns alternate: exactly one player of each copy acts per step.
    for turn, step in enumerate(steps):
        mover, waiter = ("x", "o") if turn % 2 == 0 else ("o", "x")
        assert step[mover].valid.all() and not step[waiter].valid.any()
    # Turn 4: x's third move wins copy 0. x's +1 is on its own (valid) row; o's -1 arrives on
    # o's invalid row; both rows end here.
    last = steps[4]
    assert last["x"].rewards.tolist() == [1.0, 0.0] and last["o"].rewards.tolist() == [-1.0, 0.0]
    assert last["x"].terminated.tolist() == [True, False] and last["o"].terminated.tolist() == [True, False]
    assert last["x"].episode_returns.tolist() == [1.0] and last["x"].episode_lengths.tolist() == [3]
    assert last["o"].episode_returns.tolist() == [-1.0] and last["o"].episode_lengths.tolist() == [2]
    assert last["x"].team_returns.tolist() == [0.0] and last["x"].team_lengths.tolist() == [5]
    assert last["x"].ended_copies.tolist() == [0]
    # Final observation of copy 0 from x's view: its marks on 0,1,2 and o's on 3,4.
    final_x = last["x"].final_obs[0]
    np.testing.assert_array_equal(final_x[:, :, 0].reshape(-1), [1, 1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(final_x[:, :, 1].reshape(-1), [0, 0, 0, 1, 1, 0, 0, 0, 0])
    # Copy 0 was reset in the same step: an empty board, and x to move again.
    assert last["x"].obs[0].sum() == 0 and last["o"].obs[0].sum() == 0
    np.testing.assert_array_equal(envs.acting("x"), [True, False])
    np.testing.assert_array_equal(envs.acting("o"), [False, True])
    # Copy 1 goes on: o wins with its third move (5: the middle row 3, 4, 5).
    step = envs.step({"x": np.array([4, 0]), "o": np.array([0, 5])})
    assert step["o"].rewards.tolist() == [0.0, 1.0] and step["x"].rewards.tolist() == [0.0, -1.0]
    assert step["o"].episode_returns.tolist() == [1.0] and step["x"].episode_returns.tolist() == [-1.0]
    assert step["o"].episode_rows.tolist() == [1]
    envs.close()


def test_tictactoe_masks_never_mark_an_illegal_move_legal():
    envs = NamedMultiAgentVecEnv(factory("pettingzoo.classic:tictactoe_v3"), 3, TICTACTOE, seed=0)
    assert envs.action_masks("x") is not None  # declared by the observation space: known before reset
    obs = envs.reset()
    rng = np.random.default_rng(0)
    games_ended = 0
    for _ in range(60):
        actions = {}
        for group in TICTACTOE:
            masks, acting = envs.action_masks(group), envs.acting(group)
            assert masks is not None and masks.shape == (3, 9) and masks.dtype == bool
            # Legal squares are exactly the empty ones for the player to move...
            empty = obs[group].sum(axis=-1).reshape(3, 9) == 0
            np.testing.assert_array_equal(masks[acting], empty[acting])
            # ...and rows that do not move are all True (a masked softmax stays finite there).
            assert masks[~acting].all()
            actions[group] = np.array([rng.choice(np.flatnonzero(row)) for row in masks])
        step = envs.step(actions)
        for group in TICTACTOE:
            # A legal move never costs the mover; an illegal one would (-1, from PettingZoo's
            # TerminateIllegalWrapper, on the mover's own valid row).
            assert not (step[group].valid & (step[group].rewards < 0)).any()
        obs = {group: step[group].obs for group in TICTACTOE}
        games_ended += step["x"].ended_copies.size
    assert games_ended >= 6


# --------------------------------------------------------------------------- agents that leave and join


class DiesAndAppears(ParallelEnv):
    """walker_0 and walker_1 start; late_0 joins after step 1; walker_1 dies at step 2; all
    are truncated at step 4. Reward: the action taken. The env also hands late_0 100 on the
    step it joins, which Daedalus must drop (late_0 did not act)."""

    metadata = {"name": "dies_and_appears_v0"}

    def __init__(self):
        self.possible_agents = ["walker_0", "walker_1", "late_0"]
        self.space = gym.spaces.Box(-10.0, 10.0, (2,), np.float32)
        self.reset_seeds = []

    def observation_space(self, agent):
        return self.space

    def action_space(self, agent):
        return gym.spaces.Discrete(3)

    def _obs(self, agent):
        return np.array([self.t, self.possible_agents.index(agent) + 1], dtype=np.float32)

    def reset(self, seed=None, options=None):
        self.reset_seeds.append(seed)
        self.t = 0
        self.agents = ["walker_0", "walker_1"]
        return {a: self._obs(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        assert sorted(actions) == sorted(self.agents), (actions, self.agents)
        assert all(0 <= action < 3 for action in actions.values())
        self.t += 1
        rewards = {a: float(actions[a]) for a in self.agents}
        terminations = {a: a == "walker_1" and self.t == 2 for a in self.agents}
        truncations = {a: self.t == 4 for a in self.agents}
        if self.t == 1:
            self.agents = [*self.agents, "late_0"]
            rewards["late_0"] = 100.0
        obs = {a: self._obs(a) for a in self.agents}
        self.agents = [a for a in self.agents if not (terminations.get(a) or truncations.get(a))]
        return obs, rewards, terminations, truncations, {a: {} for a in obs}


def test_agents_that_die_early_or_join_late_are_masked():
    made = []

    def make_env(seed):
        made.append(DiesAndAppears())
        return made[-1]

    groups = {"walkers": ["walker_0", "walker_1"], "late": ["late_0"]}
    envs = NamedMultiAgentVecEnv(make_env, 2, groups, seed=3)
    obs = envs.reset()
    assert [env.reset_seeds for env in made] == [[3], [4]]
    assert envs.row_names == {
        "walkers": ["walker_0&env=0", "walker_1&env=0", "walker_0&env=1", "walker_1&env=1"],
        "late": ["late_0&env=0", "late_0&env=1"],
    }
    np.testing.assert_array_equal(obs["walkers"], [[0, 1], [0, 2], [0, 1], [0, 2]])
    np.testing.assert_array_equal(obs["late"], np.zeros((2, 2)))  # not there yet
    np.testing.assert_array_equal(envs.acting("late"), [False, False])

    # Actions of absent rows are out of range on purpose: the env asserts it never sees them.
    s1 = envs.step({"walkers": np.array([1, 2, 0, 1]), "late": np.array([7, 7])})
    assert s1["walkers"].valid.all() and not s1["late"].valid.any()
    assert s1["walkers"].rewards.tolist() == [1, 2, 0, 1] and s1["late"].rewards.tolist() == [0, 0]
    np.testing.assert_array_equal(s1["late"].obs, [[1, 3], [1, 3]])  # joined: its first observation

    s2 = envs.step({"walkers": np.array([2, 2, 1, 0]), "late": np.array([1, 2])})
    assert s2["late"].valid.all() and s2["late"].rewards.tolist() == [1, 2]
    assert s2["walkers"].terminated.tolist() == [False, True, False, True]
    np.testing.assert_array_equal(s2["walkers"].episode_rows, [1, 3])
    assert s2["walkers"].episode_returns.tolist() == [4.0, 1.0]  # walker_1: 2 + 2 and 1 + 0
    assert s2["walkers"].episode_lengths.tolist() == [2, 2]
    np.testing.assert_array_equal(s2["walkers"].final_obs[[1, 3]], [[2, 2], [2, 2]])
    np.testing.assert_array_equal(s2["walkers"].obs[[1, 3]], np.zeros((2, 2)))
    assert s2["walkers"].team_returns.size == 0

    s3 = envs.step({"walkers": np.array([0, 9, 2, 9]), "late": np.array([0, 1])})
    assert s3["walkers"].valid.tolist() == [True, False, True, False]
    assert s3["walkers"].rewards.tolist() == [0, 0, 2, 0] and not s3["walkers"].terminated.any()
    np.testing.assert_array_equal(envs.acting("walkers"), [True, False, True, False])

    s4 = envs.step({"walkers": np.array([1, 9, 1, 9]), "late": np.array([2, 0])})
    assert s4["walkers"].truncated.tolist() == [True, False, True, False]
    assert s4["late"].truncated.tolist() == [True, True]
    assert s4["walkers"].episode_returns.tolist() == [4.0, 4.0]  # 1+2+0+1, 0+1+2+1
    assert s4["walkers"].episode_lengths.tolist() == [4, 4]
    assert s4["late"].episode_returns.tolist() == [3.0, 3.0]  # 1+0+2, 2+1+0: no 100 for joining
    assert s4["late"].episode_lengths.tolist() == [3, 3]
    # Copy 0: 3 + 5 + 0 + 3; copy 1: 1 + 3 + 3 + 1.
    assert s4["walkers"].team_returns.tolist() == [11.0, 8.0] and s4["late"].team_returns.tolist() == [11.0, 8.0]
    assert s4["walkers"].team_lengths.tolist() == [4, 4]
    np.testing.assert_array_equal(s4["late"].final_obs, [[4, 3], [4, 3]])
    # Reset in the same step (autoreset without a seed) and back to two walkers.
    assert [env.reset_seeds for env in made] == [[3, None], [4, None]]
    np.testing.assert_array_equal(s4["walkers"].obs, [[0, 1], [0, 2], [0, 1], [0, 2]])
    np.testing.assert_array_equal(s4["late"].obs, np.zeros((2, 2)))
    assert envs.acting("walkers").all() and not envs.acting("late").any()


def test_step_checks_actions_and_order():
    envs = NamedMultiAgentVecEnv(lambda seed: DiesAndAppears(), 1, {"all": ["walker_0", "walker_1", "late_0"]})
    with pytest.raises(DaedalusError, match="before reset"):
        envs.step({"all": np.zeros(3, dtype=np.int64)})
    envs.reset()
    with pytest.raises(DaedalusError, match="missing: all"):
        envs.step({})
    with pytest.raises(DaedalusError, match="must have 3 rows"):
        envs.step({"all": np.zeros(2, dtype=np.int64)})


class Relay(AECEnv):
    """Turn-based: a, b, c move in turn; b is out after its 2nd move; all are truncated after 7
    moves. A move earns the mover its action (0 or 1) and the next player 10. Legal moves come in
    ``info["action_mask"]``: only 0 at the 3rd move."""

    metadata = {"name": "relay_v0"}

    def __init__(self):
        self.possible_agents = ["a", "b", "c"]

    def observation_space(self, agent):
        return gym.spaces.Box(0.0, 100.0, (1,), np.float32)

    def action_space(self, agent):
        return gym.spaces.Discrete(2)

    def observe(self, agent):
        return np.array([self.turns], dtype=np.float32)

    def _set_masks(self):
        self.infos = {a: {"action_mask": np.array([1, int(self.turns != 2)], dtype=np.int8)} for a in self.agents}

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.turns, self.moves = 0, dict.fromkeys(self.agents, 0)
        self.agent_selection = "a"
        self._set_masks()

    def _next_alive(self, agent):
        order = self.agents[self.agents.index(agent) + 1 :] + self.agents
        return next(a for a in order if not (self.terminations[a] or self.truncations[a]))

    def step(self, action):
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        assert self.infos[agent]["action_mask"][action], "illegal move"
        self._cumulative_rewards[agent] = 0.0
        self._clear_rewards()
        self.turns += 1
        self.moves[agent] += 1
        following = self._next_alive(agent)
        self.rewards[agent] += float(action)
        self.rewards[following] += 10.0
        if agent == "b" and self.moves["b"] == 2:
            self.terminations["b"] = True
        if self.turns == 7:
            self.truncations = {a: not self.terminations[a] for a in self.agents}
        self._accumulate_rewards()
        self._set_masks()
        self.agent_selection = following
        self._deads_step_first()


def test_aec_rewards_arrive_on_later_steps_and_dead_agents_are_drained():
    envs = NamedMultiAgentVecEnv(lambda seed: Relay(), 1, {"runners": ["a", "b", "c"]})
    assert envs.action_masks("runners") is None  # masks in infos: known from the first reset on
    envs.reset()
    moves = [1, 1, 0, 0, 1, 1, 1]  # by a, b, c, a, b, c, a
    movers = ["a", "b", "c", "a", "b", "c", "a"]
    rows = {"a": 0, "b": 1, "c": 2}
    steps = []
    for turn, (mover, move) in enumerate(zip(movers, moves, strict=True)):
        np.testing.assert_array_equal(envs.acting("runners"), np.arange(3) == rows[mover])
        masks = envs.action_masks("runners")
        assert masks is not None and masks[[r for r in range(3) if r != rows[mover]]].all()
        assert masks[rows[mover]].tolist() == ([True, False] if turn == 2 else [True, True])
        actions = np.zeros(3, dtype=np.int64)
        actions[rows[mover]] = move
        steps.append(envs.step({"runners": actions}))
    steps = [step["runners"] for step in steps]
    for turn, step in enumerate(steps):
        np.testing.assert_array_equal(step.valid, np.arange(3) == rows[movers[turn]])
    # Each agent's reward is what last() reports when it is next selected (or drained):
    # everything it got since its previous move, on that step's row.
    assert [step.rewards.tolist() for step in steps] == [
        [0, 10, 0],  # b: a's gift
        [0, 0, 10],  # c: b's gift
        [11, 0, 0],  # a: its own 1 + c's gift
        [0, 11, 0],  # b: its own 1 + a's gift
        [0, 1, 10],  # b is out: its own 1 (drained); c: b's gift
        [10, 0, 0],  # a: its own 0 + c's gift
        [1, 0, 11],  # truncated: a's own 1; c's own 1 + a's gift
    ]
    assert steps[4].terminated.tolist() == [False, True, False]
    np.testing.assert_array_equal(steps[4].episode_rows, [1])
    assert steps[4].episode_returns.tolist() == [22.0] and steps[4].episode_lengths.tolist() == [2]
    np.testing.assert_array_equal(steps[5].obs, [[6], [0], [6]])  # after 6 moves; b is absent: zeros
    assert steps[6].truncated.tolist() == [True, False, True]
    np.testing.assert_array_equal(steps[6].final_obs[[0, 2]], [[7], [7]])
    assert steps[6].episode_returns.tolist() == [22.0, 31.0] and steps[6].episode_lengths.tolist() == [3, 2]
    assert steps[6].team_returns.tolist() == [75.0] and steps[6].team_lengths.tolist() == [7]
    np.testing.assert_array_equal(steps[6].obs, [[0], [0], [0]])  # reset in the same step
    # The learner's rule: rewards of invalid steps go to the row's previous valid step. What
    # arrives before an agent's first move (b's and c's first gift) has no move to credit.
    credit = {row: [] for row in range(3)}
    for step in steps:
        for row in range(3):
            if step.valid[row]:
                credit[row].append(0.0)
            if credit[row]:
                credit[row][-1] += float(step.rewards[row])
    assert credit == {0: [11.0, 10.0, 1.0], 1: [11.0, 1.0], 2: [10.0, 11.0]}


# --------------------------------------------------------------------------- SISL


def test_pursuit_smoke():
    pytest.importorskip("pygame", reason="pursuit_v5 needs pygame (pygame-ce), from the 'ma' extra")
    pytest.importorskip("scipy", reason="pursuit_v5 needs scipy, from the 'ma' extra")
    pursuers = [f"pursuer_{i}" for i in range(8)]
    envs = NamedMultiAgentVecEnv(factory("pettingzoo.sisl:pursuit_v5", max_cycles=5), 2, {"pursuers": pursuers}, seed=0)
    obs = envs.reset()["pursuers"]
    assert obs.shape == (16, 7, 7, 3) and envs.action_spaces["pursuers"] == gym.spaces.Discrete(5)
    rng = np.random.default_rng(0)
    total = np.zeros(16)
    for _ in range(5):
        step = envs.step({"pursuers": rng.integers(0, 5, size=16)})["pursuers"]
        total += step.rewards
    assert step.truncated.all() and step.valid.all()
    np.testing.assert_allclose(step.episode_returns, total, rtol=1e-5)
    np.testing.assert_allclose(step.team_returns, total.reshape(2, 8).sum(axis=1), rtol=1e-5)
    with pytest.raises(DaedalusError, match="one_hot_agent_id needs a 1-D Box"):
        NamedMultiAgentVecEnv(factory("pettingzoo.sisl:pursuit_v5"), 1, {"pursuers": pursuers}, one_hot_agent_id=True)
