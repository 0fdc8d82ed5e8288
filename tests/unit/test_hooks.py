"""Typed hooks and custom losses: what every algorithm emits, how a hook stops a run, bad references."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

import daedalus
from daedalus import api
from daedalus.errors import ProfileError
from daedalus.hooks import CheckpointSaved, EvalEnd, Hooks, RolloutEnd, StopTraining, UpdateEnd
from tests.conftest import write


class Recorder:
    """Records every hook call: (name, payload)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def on_rollout_end(self, info: RolloutEnd) -> None:
        self.calls.append(("on_rollout_end", info))

    def on_update(self, info: UpdateEnd) -> None:
        self.calls.append(("on_update", info))

    def on_eval(self, info: EvalEnd) -> None:
        self.calls.append(("on_eval", info))

    def on_checkpoint(self, info: CheckpointSaved) -> None:
        self.calls.append(("on_checkpoint", info))


PPO = {"total_steps": 512, "num_steps": 32, "eval_every_steps": 256, "eval_episodes": 2, "checkpoint_every_steps": 256, "final_eval_episodes": 0}
DQN = {"total_steps": 400, "learning_starts": 100, "train_frequency_steps": 100, "gradient_steps": 2, "buffer_size": 1000, "eval_every_steps": 200, "eval_episodes": 2, "checkpoint_every_steps": 200, "final_eval_episodes": 0}


@pytest.mark.parametrize(("agent_id", "config", "num_envs"), [("ppo", PPO, 4), ("a2c", PPO, 4), ("dqn", DQN, 1)])
def test_every_algorithm_emits_typed_hooks_in_order(workdir: Path, agent_id: str, config: dict[str, Any], num_envs: int) -> None:
    recorder = Recorder()
    result = daedalus.train(agent_id=agent_id, env_id="CartPole-v1", num_envs=num_envs, config=config, runs_dir=workdir / "runs", callbacks=[recorder])
    assert result.status == "completed"
    names = [name for name, _ in recorder.calls]
    rollouts = [info for name, info in recorder.calls if name == "on_rollout_end"]
    updates = [info for name, info in recorder.calls if name == "on_update"]
    evals = [info for name, info in recorder.calls if name == "on_eval"]
    checkpoints = [info.name for name, info in recorder.calls if name == "on_checkpoint"]
    # Collection steps add up to the run's steps; each update follows a collection.
    assert sum(r.num_transitions for r in rollouts) == result.steps
    assert [r.step for r in rollouts] == sorted(r.step for r in rollouts)
    assert updates and all(isinstance(u.metrics, dict) and u.metrics for u in updates)
    assert [u.num_updates for u in updates] == list(range(1, len(updates) + 1))
    assert names.index("on_update") > names.index("on_rollout_end")
    assert [e.step for e in evals] == [e["step"] for e in result.artifacts["evaluations"]]
    assert [e.mean_return for e in evals] == [e["mean_return"] for e in result.artifacts["evaluations"]]
    assert "best" in checkpoints and any(c.startswith("step-") for c in checkpoints)
    assert sum(len(r.episode_returns) for r in rollouts) == len([x for r in rollouts for x in r.episode_returns])


class StopAfter:
    def __init__(self, updates: int = 3, by_raising: bool = False) -> None:
        self.updates, self.by_raising = updates, by_raising

    def on_update(self, info: UpdateEnd) -> str | None:
        if info.num_updates >= self.updates:
            if self.by_raising:
                raise StopTraining(f"raised after {info.num_updates} updates")
            return f"returned after {info.num_updates} updates"
        return None


@pytest.mark.parametrize("by_raising", [False, True])
def test_a_hook_stops_training_and_the_run_completes_with_the_reason(workdir: Path, by_raising: bool) -> None:
    config = {**PPO, "total_steps": 100_000, "eval_every_steps": 0, "checkpoint_every_steps": 0}
    result = daedalus.train(agent_id="ppo", env_id="CartPole-v1", num_envs=4, config=config, runs_dir=workdir / "runs", callbacks=[StopAfter(3, by_raising)])
    assert result.status == "completed" and result.steps == 3 * 32 * 4
    reason = json.loads((result.path / "run.json").read_text())["stop_reason"]
    assert reason == ("raised after 3 updates" if by_raising else "returned after 3 updates")
    assert result.artifacts["stop_reason"] == reason


def test_target_return_is_recorded_as_the_stop_reason(workdir: Path) -> None:
    config = {**PPO, "total_steps": 100_000, "target_return": 5.0}
    result = daedalus.train(agent_id="ppo", env_id="CartPole-v1", num_envs=4, config=config, runs_dir=workdir / "runs")
    assert result.steps == 256  # the first evaluation already scores >= 5
    assert json.loads((result.path / "run.json").read_text())["stop_reason"].startswith("target_return 5 reached (evaluation mean")


def test_hooks_emit_ignores_callbacks_without_the_method() -> None:
    hooks = Hooks([object(), Recorder()])
    assert hooks.emit("on_checkpoint", CheckpointSaved(3, "best")) is False
    assert hooks.callbacks[1].calls == [("on_checkpoint", CheckpointSaved(3, "best"))]


def test_callbacks_in_a_profile_are_checked_at_load(workdir: Path) -> None:
    write(workdir / "hooks.py", """
        class Good:
            def __init__(self, limit=1):
                self.limit = limit
            def on_eval(self, info):
                return None

        class NoHooks:
            pass

        def a_function(info):
            return None
    """)
    path = write(workdir / "p.yaml", """
        p:
          agent_id: ppo
          env_id: CartPole-v1
          callbacks:
            - hooks.py:Good
            - {ref: hooks.py:Good, args: {limit: 3}}
            - {ref: hooks.py:Good, args: {limt: 3}}
            - hooks.py:NoHooks
            - hooks.py:a_function
            - hooks.py:Missing
    """)
    with pytest.raises(ProfileError) as info:
        api.load(path)
    problems = info.value.problems
    assert [p.split(":")[1] for p in problems] == ["7", "8", "9", "10"]
    assert "does not take args {'limt': 3}" in problems[0]
    assert "callback 'hooks.py:NoHooks' is not a hook class" in problems[1]
    assert "callback 'hooks.py:a_function' is not a hook class" in problems[2]
    assert "has no attribute 'Missing'" in problems[3]


# --------------------------------------------------------------------------- custom losses

LOSSES = """
import torch
from daedalus.algos.ppo import ppo_loss
from daedalus.algos.dqn import dqn_loss

CALLS = []

def ppo_plus(batch, network, config, clip_coef):
    CALLS.append(len(batch))
    loss, metrics = ppo_loss(batch, network, config, clip_coef)
    metrics["loss/extra"] = torch.tensor(1.5)
    return loss, metrics

def dqn_plus(batch, q_network, target_network, config):
    CALLS.append(len(batch.obs))
    return dqn_loss(batch, q_network, target_network, config)

NOT_CALLABLE = 3
"""


def _metric_columns(run: Path) -> list[str]:
    with open(run / "metrics.csv", newline="") as handle:
        return next(csv.reader(handle))


def test_a_custom_loss_by_reference_runs_through_autograd(workdir: Path) -> None:
    import sys

    write(workdir / "losses.py", LOSSES)
    ppo = daedalus.train(agent_id="ppo", env_id="CartPole-v1", num_envs=4, config={**PPO, "loss": "losses.py:ppo_plus"}, runs_dir=workdir / "runs")
    source = str((workdir / "losses.py").resolve())
    module = next(m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == source)
    # 4 updates x 4 epochs x 4 minibatches of up to 32 (128 transitions / 4; the native vector env
    # drops its reset steps)
    assert len(module.CALLS) == 4 * 4 * 4 and all(28 <= n <= 32 for n in module.CALLS)
    assert "loss/extra" in _metric_columns(ppo.path)
    module.CALLS.clear()
    dqn = daedalus.train(agent_id="dqn", env_id="CartPole-v1", config={**DQN, "loss": "losses.py:dqn_plus", "batch_size": 16}, runs_dir=workdir / "runs")
    assert dqn.status == "completed" and module.CALLS and set(module.CALLS) == {16}


def test_bad_loss_references_fail_at_load(workdir: Path) -> None:
    write(workdir / "losses.py", LOSSES)
    path = write(workdir / "p.yaml", """
        a: {agent_id: ppo, env_id: CartPole-v1, config: {loss: losses.py:NOT_CALLABLE}}
        b: {agent_id: ppo, env_id: CartPole-v1, config: {loss: losses.py:nope}}
        c: {agent_id: dqn, env_id: CartPole-v1, config: {loss: not a reference}}
        d: {agent_id: a2c, env_id: CartPole-v1, config: {loss: os:system}}
    """)
    with pytest.raises(ProfileError) as info:
        api.load(path)
    a, b, c, d = info.value.problems
    assert "names int object, not a class or function" in a
    assert "has no attribute 'nope'" in b
    assert "'loss' must be a reference 'pkg.mod:function' or 'file.py:function', got 'not a reference'" in c
    assert "standard-library module 'os'" in d


@pytest.mark.parametrize("agent_id", ["ppo", "a2c", "dqn"])
def test_metric_columns_do_not_depend_on_the_gradient_path(workdir: Path, agent_id: str) -> None:
    config = DQN if agent_id == "dqn" else PPO
    columns, first_rows = [], []
    for closed_form in (True, False):
        result = daedalus.train(agent_id=agent_id, env_id="CartPole-v1", config={**config, "closed_form_gradients": closed_form}, runs_dir=workdir / "runs")
        columns.append(sorted(_metric_columns(result.path)))
        with open(result.path / "metrics.csv", newline="") as handle:
            first_rows.append(next(csv.DictReader(handle)))
    assert columns[0] == columns[1]
    # Same seed, same data, gradients equal to float precision: the first logged losses agree too.
    for key in (k for k in first_rows[0] if k.startswith("loss/") and first_rows[0][k]):
        assert float(first_rows[0][key]) == pytest.approx(float(first_rows[1][key]), rel=1e-3, abs=1e-5), key


STEP_AGENT = """
from daedalus import StepAgent

class Coin(StepAgent):
    @staticmethod
    def get_default_parameters():
        return {}
    def act(self, state, episode_num):
        return 0
    def memorize(self, *args, **kwargs):
        pass
    def update(self, episode_num):
        pass
"""


class StopAfterEpisodes:
    def __init__(self, episodes: int) -> None:
        self.episodes = episodes
        self.seen: list[RolloutEnd] = []

    def on_rollout_end(self, info: RolloutEnd) -> str | None:
        self.seen.append(info)
        return "enough episodes" if info.episodes >= self.episodes else None


def test_the_stepwise_loop_emits_hooks_and_can_be_stopped(workdir: Path) -> None:
    write(workdir / "coin.py", STEP_AGENT)
    hook = StopAfterEpisodes(2)
    result = daedalus.train(agent_id="coin.py:Coin", env_id="CartPole-v1", loop={"max_episodes": 10, "eval_episodes": 0}, runs_dir=workdir / "runs", callbacks=[hook])
    assert result.status == "completed"
    assert [info.episodes for info in hook.seen] == [1, 2]
    assert result.steps == sum(info.num_transitions for info in hook.seen)
    assert json.loads((result.path / "run.json").read_text())["stop_reason"] == "enough episodes"


def test_callbacks_and_losses_are_saved_as_absolute_references(
    workdir: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    from daedalus.config import load_profiles

    project = workdir / "project"
    write(project / "hooks.py", "class Quiet:\n    def on_eval(self, info):\n        return None\n")
    write(project / "losses.py", LOSSES)
    write(project / "p.yaml", """
        p:
          agent_id: ppo
          env_id: CartPole-v1
          callbacks: [hooks.py:Quiet]
          config: {total_steps: 256, num_steps: 32, loss: losses.py:ppo_plus, final_eval_episodes: 0}
    """)
    result = daedalus.train(project / "p.yaml", runs_dir=workdir / "runs")
    saved = yaml.safe_load((result.path / "profile.yaml").read_text())["p"]
    assert saved["callbacks"] == [{"ref": f"{project / 'hooks.py'}:Quiet", "args": {}}]
    assert saved["config"]["loss"] == f"{project / 'losses.py'}:ppo_plus"
    (saved_profile,) = load_profiles(result.path / "profile.yaml")
    assert api.code_references(saved_profile) == [
        ("callbacks[0]", f"{project / 'hooks.py'}:Quiet"),
        ("config.loss", f"{project / 'losses.py'}:ppo_plus"),
    ]
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert daedalus.load_run(result.path, trust_code=True).checkpoint == "final"


OFFPOLICY_LOSSES = """
from daedalus.algos.sac import sac_actor_loss, sac_critic_loss
from daedalus.algos.td3 import td3_actor_loss, td3_critic_loss

CALLS = []

def sac_critic(batch, agent, alpha):
    CALLS.append("sac_critic")
    return sac_critic_loss(batch, agent, alpha)

def sac_actor(obs, agent, actions, log_probs, alpha):
    CALLS.append("sac_actor")
    return sac_actor_loss(obs, agent, actions, log_probs, alpha)

def td3_critic(batch, agent, config):
    CALLS.append("td3_critic")
    return td3_critic_loss(batch, agent, config)

def td3_actor(obs, agent):
    CALLS.append("td3_actor")
    return td3_actor_loss(obs, agent)
"""


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_sac_and_td3_take_custom_critic_and_actor_losses(workdir: Path, algo: str) -> None:
    import sys

    write(workdir / "offpolicy_losses.py", OFFPOLICY_LOSSES)
    config = {
        "total_steps": 300, "learning_starts": 200, "batch_size": 32, "buffer_size": 1000, "gradient_steps": 1,
        "hidden_sizes": [32, 32], "eval_every_steps": 0, "final_eval_episodes": 0,
        "critic_loss": f"offpolicy_losses.py:{algo}_critic", "actor_loss": f"offpolicy_losses.py:{algo}_actor",
    }
    result = daedalus.train(agent_id=algo, env_id="Pendulum-v1", config=config, runs_dir=workdir / "runs")
    assert result.status == "completed"
    source = str((workdir / "offpolicy_losses.py").resolve())
    module = next(m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == source)
    critic_calls = module.CALLS.count(f"{algo}_critic")
    assert critic_calls == 100  # one gradient step per env step past learning_starts
    # SAC steps the actor with every critic step; TD3 every policy_delay (2) steps.
    assert module.CALLS.count(f"{algo}_actor") == (100 if algo == "sac" else 50)
    module.CALLS.clear()
