"""Multi-agent training: policy mapping by longest prefix, profile checks, per-agent GAE, and
PettingZoo runs (mpe2's simple_spread and simple_tag) through train, evaluate, resume, compare
and the run plots. The env edge (naming, masking, AEC turns) is in test_pettingzoo_env.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import daedalus
from daedalus import api
from daedalus.config import map_agents, profile_from_dict
from daedalus.errors import ProfileError
from daedalus.returns import agent_gae, compute_gae
from tests.conftest import write
from tests.unit.test_resume import SigtermAt

pytest.importorskip("mpe2")

SPREAD = """
spread:
  agent_id: ppo
  env_id: mpe2:simple_spread_v3
  env_args: {N: 3, max_cycles: 25, continuous_actions: false}
  num_envs: 2
  seed: 1
  config: {total_steps: 1200, num_steps: 50, eval_every_steps: 600, eval_episodes: 2, final_eval_episodes: 3,
           checkpoint_every_steps: 300, keep_last: 20, log_every_steps: 200, torch_threads: 1}
"""

TAG = """
tag:
  agent_id: ppo
  env_id: mpe2:simple_tag_v3
  env_args: {max_cycles: 25, continuous_actions: false}
  num_envs: 2
  seed: 2
  policies:
    chaser: {}
    prey: {config: {learning_rate: 1.0e-3, hidden_sizes: [32]}}
  policy_mapping: {adversary_: chaser, agent_: prey}
  config: {total_steps: 1200, num_steps: 50, eval_every_steps: 600, eval_episodes: 2, final_eval_episodes: 3,
           checkpoint_every_steps: 300, keep_last: 20, log_every_steps: 200, torch_threads: 1}
"""


# --------------------------------------------------------------------------- mapping


def test_longest_prefix_wins_whatever_the_order_or_policy_names() -> None:
    agents = ["adversary_0", "adversary_1", "agent_0", "abc", "zed"]
    # "a" and "ad" and "adversary_1" overlap: each agent takes its longest matching prefix.
    mapping = {"a": "short", "ad": "zz_long_policy_name", "adversary_1": "b", "": "rest"}
    assert map_agents(agents, mapping) == {
        "short": ["agent_0", "abc"],
        "zz_long_policy_name": ["adversary_0"],
        "b": ["adversary_1"],
        "rest": ["zed"],
    }
    # Coltra's bug (sorting by policy-name length) would send "abc" to "a_very_long_name".
    assert map_agents(["abc"], {"ab": "p", "a": "a_very_long_name"}) == {"p": ["abc"]}


def test_no_matching_prefix_lists_the_agents_and_the_prefixes() -> None:
    with pytest.raises(ProfileError) as info:
        map_agents(["pursuer_0", "pursuer_1", "evader_0"], {"pursuer_": "p"})
    message = str(info.value)
    assert "evader_0" in message and "pursuer_0, pursuer_1, evader_0" in message and "'pursuer_'" in message
    assert "''" in message  # the fix: a catch-all prefix


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"policies": {"a": {}, "b": {}}}, "no 'policy_mapping'"),
        ({"policies": {"a": {}}, "policy_mapping": {"": "b"}}, "not a policy of this profile"),
        ({"policy_mapping": {"": "a"}}, "has no 'policies' section"),
        ({"policies": {"a": {"trainable": "yes"}}}, "must be true or false"),
        ({"policies": {"a": {"learning_rate": 1}}}, "unknown policy key 'learning_rate'"),
    ],
)
def test_policy_sections_are_checked_at_load(fields: dict, match: str) -> None:
    with pytest.raises(ProfileError, match=match):
        profile_from_dict("p", {"agent_id": "ppo", "env_id": "mpe2:simple_tag_v3", **fields})


def test_profile_errors_name_the_env_and_the_fix() -> None:
    tag = {"agent_id": "ppo", "env_id": "mpe2:simple_tag_v3", "env_args": {"continuous_actions": False}}
    # Adversaries see 16 numbers, the prey 14: one shared policy cannot take both.
    with pytest.raises(ProfileError, match=r"adversary_0.*agent_0|separate groups"):
        api.validate(profile_from_dict("p", tag))
    with pytest.raises(ProfileError, match="does not train on multi-agent environments"):
        api.validate(profile_from_dict("p", {**tag, "agent_id": "random"}))
    with pytest.raises(ProfileError, match="no prefix matches agent"):
        api.validate(profile_from_dict("p", {**tag, "policies": {"c": {}}, "policy_mapping": {"adversary_": "c"}}))
    # A Gymnasium env with policies is the one-agent case (test_multiagent_gymnasium.py): the random agent cannot train it.
    with pytest.raises(ProfileError, match=r"does not train on multi-agent environments \('Pendulum-v1' has agents agent_0\)"):
        api.validate(profile_from_dict("p", {"agent_id": "random", "env_id": "Pendulum-v1", "policies": {"a": {}}}))


# --------------------------------------------------------------------------- per-agent GAE


def test_agent_gae_by_hand_for_turns_deaths_and_cuts() -> None:
    gamma, lam = 0.9, 0.8
    # Row 0 moves first; the opponent's winning move (t=3, not row 0's turn) ends the game: its
    # -1 belongs to row 0's last move (t=2). Row 1 moves second; the 5 before its first move
    # belongs to no move of its own and is dropped; it ends the game at its own move (t=3).
    # Row 2 acts once; its episode is cut at t=2 (bootstrap 4.0); the reward 7 at t=3 is the next
    # episode's, before it acted there.
    valid = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0], [0, 1, 0]], dtype=bool)
    rewards = np.array([[0, 5, 1], [0, 0, 2], [0, 0, 3], [-1, 1, 7]], dtype=np.float32)
    terminated = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0], [1, 1, 0]], dtype=bool)
    truncated = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0]], dtype=bool)
    values = np.array([[0.5, 9, 0.5], [9, 0.4, 9], [0.2, 9, 9], [9, 0.3, 9]], dtype=np.float32)
    final_values = np.zeros((4, 3), dtype=np.float32)
    final_values[2, 2] = 4.0
    advantages, returns = agent_gae(rewards, values, terminated, truncated, valid, final_values, np.zeros(3), gamma, lam)
    expected = np.zeros((4, 3), dtype=np.float32)
    expected[2, 0] = -1.0 - 0.2                                   # -1 from the opponent's move, game over
    expected[0, 0] = (0.9 * 0.2 - 0.5) + gamma * lam * expected[2, 0]
    expected[3, 1] = 1.0 - 0.3                                    # its own winning move
    expected[1, 1] = (0.9 * 0.3 - 0.4) + gamma * lam * expected[3, 1]
    expected[0, 2] = (1 + 2 + 3) + gamma * 4.0 - 0.5               # rewards until the cut, then bootstrap
    np.testing.assert_allclose(advantages, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(returns, np.where(valid, expected + values, 0.0), rtol=1e-6, atol=1e-6)


def test_agent_gae_is_gae_when_every_agent_acts_every_step() -> None:
    rng = np.random.default_rng(0)
    shape = (16, 6)
    rewards, values = rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)
    terminated = rng.random(shape) < 0.1
    truncated = (rng.random(shape) < 0.1) & ~terminated
    final_values, last = rng.normal(size=shape).astype(np.float32), rng.normal(size=6).astype(np.float32)
    next_values = np.concatenate([values[1:], last[None]])
    next_values = np.where(terminated | truncated, final_values, next_values)
    expected = compute_gae(rewards, values, next_values, terminated, truncated, 0.99, 0.95)
    got = agent_gae(rewards, values, terminated, truncated, np.ones(shape, bool), final_values, last, 0.99, 0.95)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


# --------------------------------------------------------------------------- PettingZoo runs


def test_shared_policy_on_simple_spread_trains_evaluates_and_resumes_exactly(workdir: Path) -> None:
    profile_file = write(workdir / "spread.yaml", SPREAD)
    whole = daedalus.train(profile_file, runs_dir=workdir / "one")
    assert whole.status == "completed"
    latest = json.loads((whole.path / "eval.json").read_text())["latest"]
    assert latest["episodes"] == 3 and set(latest["agents"]) == {"agent_0", "agent_1", "agent_2"}
    assert latest["mean_return"] == pytest.approx(sum(latest["agents"].values()), rel=0.2)  # team = sum of agents
    # Interrupted by SIGTERM and resumed: the same weights as in one go.
    first = daedalus.train(profile_file, runs_dir=workdir / "two", callbacks=[SigtermAt(600)])
    assert first.status == "interrupted"
    resumed = daedalus.resume(first.path, runs_dir=workdir / "two")
    a = load_file(str(whole.path / "checkpoints/final/weights.safetensors"))
    b = load_file(str(resumed.path / "checkpoints/final/weights.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # daedalus evaluate on the run: team, per policy, per agent.
    result, _ = api.evaluate_run(whole.path, episodes=4, runs_dir=workdir / "one")
    assert "team return" in result.format() and len(result.team_returns) == 4


def test_two_policies_by_prefix_train_at_once_with_per_policy_curves(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAEDALUS_PLOTS", "1")
    profile_file = write(workdir / "tag.yaml", TAG)
    run = daedalus.train(profile_file, runs_dir=workdir / "runs")
    assert run.status == "completed"
    header = (run.path / "metrics.csv").read_text().splitlines()[0].split(",")
    for name in ("loss/chaser/policy", "loss/prey/policy", "charts/chaser/episode_return", "charts/prey/episode_return"):
        assert name in header
    state = json.loads((run.path / "checkpoints/final/state.json").read_text())
    assert state["groups"] == {"chaser": ["adversary_0", "adversary_1", "adversary_2"], "prey": ["agent_0"]}
    assert state["policies"]["prey"]["config"]["hidden_sizes"] == [32]  # each policy its own config
    evaluation = run.artifacts["final_evaluation"]
    assert set(evaluation["policies"]) == {"chaser", "prey"}
    # Runs compare and the run's plots read multi-agent runs like any other.
    rows, corrupt = api.compare_runs(profile="tag", runs_dir=workdir / "runs")
    assert corrupt == 0 and rows[0].runs == 1 and rows[0].final_mean == pytest.approx(run.final_return)
    assert (run.path / "plots" / "losses.png").is_file() and (run.path / "plots" / "returns.png").is_file()
    from daedalus.api import compare

    panels = compare._present_panels(compare.RUN_PLOT_FILES["returns.png"], compare._read_series(run.path))
    assert [title for title, _ in panels] == ["return", "return per agent, by policy"]
    assert set(panels[1][1]) == {"charts/chaser/episode_return", "charts/prey/episode_return", "eval/chaser/mean_return", "eval/prey/mean_return"}


def test_a_frozen_policy_starts_from_another_runs_checkpoint(workdir: Path) -> None:
    profile_file = write(workdir / "tag.yaml", TAG)
    source = daedalus.train(profile_file, runs_dir=workdir / "runs")
    text = TAG.replace("chaser: {}", f"chaser: {{trainable: false, checkpoint: '{source.path}:chaser'}}")
    frozen = daedalus.train(write(workdir / "frozen.yaml", text), runs_dir=workdir / "runs")
    a = load_file(str(source.path / "checkpoints/final/weights.safetensors"))
    b = load_file(str(frozen.path / "checkpoints/final/weights.safetensors"))
    chaser = [k for k in a if k.startswith("chaser::network/")]
    prey = [k for k in a if k.startswith("prey::network/")]
    assert chaser and all(torch.equal(a[k], b[k]) for k in chaser)  # loaded, then not trained
    assert not all(torch.equal(a[k], b[k]) for k in prey)  # the other policy trained on


def test_copy_of_a_run_folder_resumes_multi_agent_from_a_snapshot(workdir: Path) -> None:
    profile_file = write(workdir / "tag.yaml", TAG)
    whole = daedalus.train(profile_file, runs_dir=workdir / "one")
    copy = workdir / "two" / whole.path.name
    shutil.copytree(whole.path, copy)
    resumed = daedalus.resume(copy, runs_dir=workdir / "two", checkpoint="step-600", total_steps=whole.steps)
    a = load_file(str(whole.path / "checkpoints/final/weights.safetensors"))
    b = load_file(str(resumed.path / "checkpoints/final/weights.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- action masks


def test_masked_policies_only_take_legal_actions() -> None:
    from gymnasium import spaces

    from daedalus.algos.on_policy import ActorCriticPolicy
    from daedalus.algos.ppo import PPOConfig, make_ppo_agent
    from daedalus.rollout.policies import RandomPolicy

    rng = np.random.default_rng(0)
    mask = rng.random((500, 9)) < 0.3
    mask[np.arange(500), rng.integers(0, 9, 500)] = True  # at least one legal action per row
    random_actions = RandomPolicy(spaces.Discrete(9), seed=0).act(np.zeros((500, 4)), mask=mask).actions
    assert mask[np.arange(500), random_actions].all()
    agent = make_ppo_agent(spaces.Box(-1, 1, (4,)), spaces.Discrete(9), PPOConfig(), seed=0)
    policy = ActorCriticPolicy(agent)
    obs = rng.normal(size=(500, 4)).astype(np.float32)
    out = policy.act(obs, mask=mask)
    assert mask[np.arange(500), out.actions].all()
    # log pi is that of the distribution renormalized over the legal actions
    with torch.no_grad():
        logits, _ = agent.network(torch.from_numpy(obs))
        logits = logits.masked_fill(~torch.from_numpy(mask), float("-inf"))
        expected = torch.log_softmax(logits, -1)[torch.arange(500), torch.from_numpy(out.actions)]
    np.testing.assert_allclose(out.log_probs, expected.numpy(), rtol=1e-5, atol=1e-5)
    greedy = policy.act(obs, deterministic=True, mask=mask).actions
    assert mask[np.arange(500), greedy].all()


def test_turn_based_tictactoe_collects_only_legal_moves_and_learns_from_masked_batches(workdir: Path) -> None:
    profile_file = write(
        workdir / "ttt.yaml",
        """
        ttt:
          agent_id: ppo
          env_id: pettingzoo.classic:tictactoe_v3
          num_envs: 4
          seed: 0
          config: {total_steps: 512, num_steps: 32, eval_every_steps: 0, final_eval_episodes: 4, torch_threads: 1}
        """,
    )
    (resolved,) = api.load(profile_file)
    assert resolved.groups == {"default": ["player_1", "player_2"]}
    from types import SimpleNamespace

    from daedalus.algos.multi_policy import policy_batch
    from daedalus.algos.on_policy import ActorCriticPolicy
    from daedalus.rollout.multiagent import multi_agent_source

    agent = api.make_agent(resolved)
    policy = agent.policies["default"]
    context = SimpleNamespace(make_env=resolved.make_env, num_envs=4, seed=0, journal=None)
    source = multi_agent_source(context, resolved.groups, {"default": policy.preprocess})
    source.reset(seed=0)
    trajectory = source.sample({"default": ActorCriticPolicy(policy)}, 64)["default"]
    source.close()
    masks, actions, valid = trajectory.extras["action_mask"], trajectory.actions, trajectory.valid
    steps, rows = np.nonzero(valid)
    assert len(steps) > 0 and masks[steps, rows, actions[steps, rows]].all()  # every move played was legal
    assert not valid.all(1).any()  # turns: never both players of a copy at once
    batch = policy_batch(policy, trajectory)
    assert batch.masks is not None and batch.masks.shape == (int(valid.sum()), 9)
    run = daedalus.train(profile_file, runs_dir=workdir / "runs")
    assert run.status == "completed" and set(run.artifacts["final_evaluation"]["agents"]) == {"player_1", "player_2"}


def test_a_users_make_env_may_return_a_pettingzoo_env(workdir: Path) -> None:
    write(
        workdir / "my_env.py",
        """
        def make_env(**kwargs):
            from mpe2 import simple_spread_v3

            return simple_spread_v3.parallel_env(max_cycles=25, continuous_actions=False, **kwargs)
        """,
    )
    profile = write(
        workdir / "p.yaml",
        """
        mine:
          agent_id: ppo
          env_id: my_env.py:make_env
          env_args: {N: 2}
          num_envs: 2
          config: {total_steps: 200, num_steps: 50, eval_every_steps: 0, final_eval_episodes: 2}
        """,
    )
    run = daedalus.train(profile, runs_dir=workdir / "runs")
    assert run.status == "completed"
    assert set(run.artifacts["final_evaluation"]["agents"]) == {"agent_0", "agent_1"}


def test_a_random_opponent_is_a_policy_that_never_trains_and_resumes_exactly(workdir: Path) -> None:
    with pytest.raises(ProfileError, match="is random: it takes no 'config'"):
        profile_from_dict("p", {"agent_id": "ppo", "env_id": "CartPole-v1", "policies": {"r": {"random": True, "config": {"learning_rate": 1}}}})
    text = """
    ttt:
      agent_id: ppo
      env_id: pettingzoo.classic:tictactoe_v3
      num_envs: 4
      seed: 5
      policies: {learner: {}, opponent: {random: true}}
      policy_mapping: {player_1: learner, player_2: opponent}
      config: {total_steps: 1024, num_steps: 32, eval_every_steps: 512, eval_episodes: 4, final_eval_episodes: 0,
               checkpoint_every_steps: 256, keep_last: 20, log_every_steps: 128, torch_threads: 1}
    """
    profile_file = write(workdir / "ttt.yaml", text)
    whole = daedalus.train(profile_file, runs_dir=workdir / "one")
    state = json.loads((whole.path / "checkpoints/final/state.json").read_text())
    assert state["policies"]["opponent"]["kind"] == "random" and state["trainable"] == {"learner": True, "opponent": False}
    first = daedalus.train(profile_file, runs_dir=workdir / "two", callbacks=[SigtermAt(500)])
    resumed = daedalus.resume(first.path, runs_dir=workdir / "two")
    a = load_file(str(whole.path / "checkpoints/final/weights.safetensors"))
    b = load_file(str(resumed.path / "checkpoints/final/weights.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # Cross-play: the learner against the run's own random opponent, named explicitly.
    result, _ = api.evaluate_run(whole.path, episodes=6, runs_dir=workdir / "one", policies=[f"opponent={whole.path}:opponent"])
    assert len(result.team_returns) == 6


def test_agent_id_input_gives_a_shared_policy_its_agents_index(workdir: Path) -> None:
    text = SPREAD.replace("  config:", "  policies: {default: {agent_id_input: true}}\n  config:", 1)
    (resolved,) = api.load(write(workdir / "spread.yaml", text))
    observation_space, _ = resolved.group_spaces["default"]
    assert observation_space.shape == (18 + 3,)  # simple_spread's 18 numbers + a one-hot of 3 agents
    run = daedalus.train(workdir / "spread.yaml", runs_dir=workdir / "runs")
    assert run.status == "completed"
    weights = load_file(str(run.path / "checkpoints/final/weights.safetensors"))
    first_layer = [v for k, v in weights.items() if k.startswith("default::network/") and k.endswith("weight") and v.ndim == 2]
    assert any(v.shape[1] == 21 for v in first_layer)
    result, _ = api.evaluate_run(run.path, episodes=2, runs_dir=workdir / "runs")
    assert len(result.team_returns) == 2


# --------------------------------------------------------------------------- centralized critic (MAPPO)


def test_centralized_critic_rows_hold_the_copys_joint_observation() -> None:
    from daedalus.envs.pettingzoo import NamedMultiAgentVecEnv, make_pettingzoo

    def make(seed: int | None) -> object:
        return make_pettingzoo("mpe2:simple_spread_v3", {"N": 3, "max_cycles": 25, "continuous_actions": False})

    groups = {"default": ["agent_0", "agent_1", "agent_2"]}
    plain = NamedMultiAgentVecEnv(make, 2, groups, seed=4)
    joint = NamedMultiAgentVecEnv(make, 2, groups, seed=4, centralized_critic=["default"])
    assert joint.observation_spaces["default"].shape == (18 + 3 * 18 + 3,) and joint.actor_inputs == {"default": 18}
    own, rows = plain.reset(seed=4)["default"], joint.reset(seed=4)["default"]
    for row in range(6):
        copy, agent = divmod(row, 3)
        np.testing.assert_array_equal(rows[row, :18], own[row])
        np.testing.assert_array_equal(rows[row, 18:72], own[3 * copy : 3 * copy + 3].reshape(-1))
        np.testing.assert_array_equal(rows[row, 72:], np.eye(3)[agent])
    actions = {"default": np.zeros(6, dtype=np.int64)}
    a, b = plain.step(actions)["default"], joint.step(actions)["default"]
    np.testing.assert_array_equal(b.obs[:, :18], a.obs)
    np.testing.assert_array_equal(b.rewards, a.rewards)
    plain.close()
    joint.close()


def test_the_actor_of_a_centralized_critic_network_sees_only_its_own_observation() -> None:
    from gymnasium import spaces

    from daedalus.nn import policy_gradient
    from daedalus.nn.networks import ActorCritic

    torch.manual_seed(0)
    network = ActorCritic(10, spaces.Discrete(3), (8,), actor_inputs=4)
    assert not policy_gradient.supports(network)  # autograd path
    obs = torch.randn(5, 10)
    changed = obs.clone()
    changed[:, 4:] = torch.randn(5, 6)  # what only the critic reads
    logits_a, values_a = network(obs)
    logits_b, values_b = network(changed)
    assert torch.equal(logits_a, logits_b) and not torch.equal(values_a, values_b)
    assert torch.equal(network.value(obs), values_a)
    with pytest.raises(ValueError, match="separate trunks"):
        ActorCritic(10, spaces.Discrete(3), (8,), shared_trunk=True, actor_inputs=4)


def test_mappo_trains_next_to_an_ippo_policy_and_resumes_exactly(workdir: Path) -> None:
    text = TAG.replace("chaser: {}", "chaser: {config: {critic: centralized}}")
    profile_file = write(workdir / "tag.yaml", text)
    (resolved,) = api.load(profile_file)
    assert resolved.actor_inputs == {"chaser": 16}
    assert resolved.group_spaces["chaser"][0].shape == (16 + 3 * 16 + 3,)
    assert resolved.group_spaces["prey"][0].shape == (14,)
    whole = daedalus.train(profile_file, runs_dir=workdir / "one")
    assert whole.status == "completed" and set(whole.artifacts["final_evaluation"]["policies"]) == {"chaser", "prey"}
    first = daedalus.train(profile_file, runs_dir=workdir / "two", callbacks=[SigtermAt(600)])
    resumed = daedalus.resume(first.path, runs_dir=workdir / "two")
    a = load_file(str(whole.path / "checkpoints/final/weights.safetensors"))
    b = load_file(str(resumed.path / "checkpoints/final/weights.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ProfileError, match="centralized critic needs a multi-agent environment"):
        api.validate(profile_from_dict("p", {"agent_id": "ppo", "env_id": "CartPole-v1", "config": {"critic": "centralized"}}))


# --------------------------------------------------------------------------- DQN: independent Q-learning


def test_dqn_trains_one_shared_q_network_on_a_multi_agent_env_and_resumes_exactly(workdir: Path) -> None:
    text = """
    dqn_spread:
      agent_id: dqn
      env_id: mpe2:simple_spread_v3
      env_args: {N: 3, max_cycles: 25, continuous_actions: false}
      num_envs: 2
      seed: 0
      config: {total_steps: 1200, learning_starts: 200, train_frequency_steps: 50, gradient_steps: 4,
               eval_every_steps: 600, eval_episodes: 2, final_eval_episodes: 2, checkpoint_every_steps: 300,
               keep_last: 20, log_every_steps: 100, save_buffer: true, torch_threads: 1}
    """
    profile_file = write(workdir / "dqn.yaml", text)
    whole = daedalus.train(profile_file, runs_dir=workdir / "one")
    assert whole.status == "completed" and set(whole.artifacts["final_evaluation"]["agents"]) == {"agent_0", "agent_1", "agent_2"}
    weights = load_file(str(whole.path / "checkpoints/final/weights.safetensors"))
    assert any(k.startswith("default::q_network/") for k in weights)
    first = daedalus.train(profile_file, runs_dir=workdir / "two", callbacks=[SigtermAt(700)])
    resumed = daedalus.resume(first.path, runs_dir=workdir / "two")
    again = load_file(str(resumed.path / "checkpoints/final/weights.safetensors"))
    assert weights.keys() == again.keys() and all(torch.equal(weights[k], again[k]) for k in weights)
    result, _ = api.evaluate_run(whole.path, episodes=3, runs_dir=workdir / "one")
    assert len(result.team_returns) == 3
    two = text.replace("  config:", "  policies: {a: {}, b: {}}\n      policy_mapping: {agent_0: a, '': b}\n      config:", 1)
    with pytest.raises(ProfileError, match="dqn trains one network shared by every agent"):
        api.load(write(workdir / "two.yaml", two))


@pytest.mark.parametrize("rollout", ["{backend: subprocess}", "{vectorization: async}"])
def test_copies_in_child_processes_train_exactly_as_in_process_ones(workdir: Path, rollout: str) -> None:
    """backend: subprocess moves the copies into one child process; vectorization: async splits them
    over child processes stepped at once. Nothing else changes."""
    local = daedalus.train(write(workdir / "tag.yaml", TAG), runs_dir=workdir / "local")
    text = TAG.replace("  num_envs: 2\n", f"  num_envs: 2\n  rollout: {rollout}\n", 1)
    child = daedalus.train(write(workdir / "tag_child.yaml", text), runs_dir=workdir / "child")
    assert child.status == "completed"
    a = load_file(str(local.path / "checkpoints/final/weights.safetensors"))
    b = load_file(str(child.path / "checkpoints/final/weights.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert child.artifacts["final_evaluation"]["team_returns"] == local.artifacts["final_evaluation"]["team_returns"]


@pytest.mark.parametrize(("env_id", "env_args", "copies"), [
    ("mpe2:simple_tag_v3", {"max_cycles": 7, "continuous_actions": False}, 3),  # two groups, episodes end every 7 steps
    ("pettingzoo.classic:tictactoe_v3", {}, 3),  # AEC: one agent acts at a time, action masks
])
def test_parallel_copies_step_exactly_like_one_vector_env(env_id: str, env_args: dict[str, object], copies: int) -> None:
    from functools import partial

    from daedalus.envs.pettingzoo import NamedMultiAgentVecEnv, make_pettingzoo
    from daedalus.rollout.multiagent import ParallelNamedVecEnv, _slice

    make_env = partial(_make_pz, env_id, env_args)
    probe = make_pettingzoo(env_id, env_args)
    agents = list(probe.possible_agents)
    groups = {"first": [a for a in agents if a.startswith(agents[0][:3])], "rest": [a for a in agents if not a.startswith(agents[0][:3])]}
    groups = {k: v for k, v in groups.items() if v}
    one = NamedMultiAgentVecEnv(make_env, copies, groups, seed=5)
    many = ParallelNamedVecEnv(partial(_slice, make_env, groups, {}), copies, 2, seed=5)
    try:
        assert many.starts == [0, 2] and many.row_names == one.row_names and many.num_rows == one.num_rows
        first, second = one.reset(), many.reset()
        assert all(np.array_equal(first[g], second[g]) for g in groups)
        rng = np.random.default_rng(0)
        ended = 0
        for _ in range(40):
            actions = {}
            for g in groups:
                mask = one.action_masks(g)
                assert (mask is None) == (many.action_masks(g) is None)
                if mask is not None:
                    assert np.array_equal(mask, many.action_masks(g))
                    actions[g] = np.array([rng.choice(np.flatnonzero(row)) for row in mask])
                else:
                    actions[g] = rng.integers(0, one.action_spaces[g].n, one.num_rows[g])
            a, b = one.step(actions), many.step(actions)
            for g in groups:
                for field in ("obs", "rewards", "terminated", "truncated", "final_obs", "valid", "episode_returns",
                              "episode_lengths", "episode_rows", "team_returns", "team_lengths", "ended_copies"):
                    assert np.array_equal(getattr(a[g], field), getattr(b[g], field)), (g, field)
            ended += len(a[next(iter(groups))].ended_copies)
        assert ended > 0  # copies ended and were reset, in both
    finally:
        one.close()
        many.close()


def _make_pz(env_id: str, env_args: dict[str, object], seed: int | None) -> object:
    from daedalus.envs.pettingzoo import make_pettingzoo

    return make_pettingzoo(env_id, env_args)


def test_an_env_of_no_known_kind_is_a_profile_error_at_load(workdir: Path) -> None:
    write(workdir / "odd.py", "def make_env(**kwargs):\n    return {'not': 'an env'}\n")
    profile = write(workdir / "p.yaml", "odd:\n  agent_id: ppo\n  env_id: odd.py:make_env\n")
    with pytest.raises(ProfileError, match=r"neither a Gymnasium env nor a PettingZoo env .*p\.yaml:3|p\.yaml:3.*neither a Gymnasium env nor a PettingZoo env"):
        api.load(profile)


def test_replay_records_a_multi_agent_run(workdir: Path) -> None:
    import imageio.v3 as iio

    run = daedalus.train(write(workdir / "spread.yaml", SPREAD), runs_dir=workdir / "runs")
    result, video = api.replay(run.path, workdir / "spread.mp4", episodes=2, runs_dir=workdir / "runs")
    frames = iio.imread(video)
    # A reset frame and one per step, but the last step of each episode (the copy is reset by then).
    assert frames.shape[0] == 2 * 25 and frames.shape[-1] == 3 and frames.std() > 0
    assert len(result.team_returns) == 2 and set(result.agent_returns) == {"agent_0", "agent_1", "agent_2"}


def test_a_state_critic_reads_the_envs_global_state(workdir: Path) -> None:
    from daedalus.envs.pettingzoo import NamedMultiAgentVecEnv, make_pettingzoo

    def make(seed: int | None) -> object:
        return make_pettingzoo("mpe2:simple_spread_v3", {"N": 3, "max_cycles": 25, "continuous_actions": False})

    envs = NamedMultiAgentVecEnv(make, 2, {"default": ["agent_0", "agent_1", "agent_2"]}, seed=1, state_critic=["default"])
    state_size = envs.state_groups["default"][2]
    assert envs.observation_spaces["default"].shape == (18 + state_size + 3,) and envs.actor_inputs == {"default": 18}
    rows = envs.reset(seed=1)["default"]
    for copy in range(2):
        state = np.asarray(envs.envs[copy].state(), dtype=np.float32).reshape(-1)
        for agent in range(3):
            np.testing.assert_array_equal(rows[3 * copy + agent, 18 : 18 + state_size], state)
    envs.close()
    text = SPREAD.replace("torch_threads: 1}", "torch_threads: 1, critic: state}")
    run = daedalus.train(write(workdir / "spread.yaml", text), runs_dir=workdir / "runs")
    assert run.status == "completed" and len(run.artifacts["final_evaluation"]["team_returns"]) == 3


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_sac_and_td3_share_one_actor_on_continuous_multi_agent_envs(workdir: Path, algo: str) -> None:
    text = f"""
    cont:
      agent_id: {algo}
      env_id: mpe2:simple_spread_v3
      env_args: {{N: 2, max_cycles: 25, continuous_actions: true}}
      num_envs: 2
      seed: 0
      config: {{total_steps: 400, learning_starts: 100, eval_every_steps: 200, eval_episodes: 2, final_eval_episodes: 2,
               checkpoint_every_steps: 100, keep_last: 20, log_every_steps: 50, save_buffer: true, torch_threads: 1,
               hidden_sizes: [32, 32], batch_size: 32}}
    """
    profile_file = write(workdir / "cont.yaml", text)
    whole = daedalus.train(profile_file, runs_dir=workdir / "one")
    assert whole.status == "completed" and set(whole.artifacts["final_evaluation"]["agents"]) == {"agent_0", "agent_1"}
    first = daedalus.train(profile_file, runs_dir=workdir / "two", callbacks=[SigtermAt(250)])
    resumed = daedalus.resume(first.path, runs_dir=workdir / "two")
    a = load_file(str(whole.path / "checkpoints/final/weights.safetensors"))
    b = load_file(str(resumed.path / "checkpoints/final/weights.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
