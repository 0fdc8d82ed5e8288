"""Training on Ray rollout workers (``rollout: {backend: ray}``) on the session's real Ray cluster.

The ``ray_cluster`` fixture is a real two-node local cluster (tests/conftest.py). These tests kill
real worker processes (SIGKILL to their pid), break envs, starve rounds with a timeout, drop stale
answers and train, resume and join the cluster from a separate ``daedalus`` process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import daedalus
from daedalus.errors import DaedalusError, ProfileError
from tests.conftest import write

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

#: Envs the workers build from the profile's folder (``envs.py:make_env``): CartPole that sleeps
#: per step in copies whose seed is at least ``slow_from``, or breaks at its ``at_step``-th step.
ENVS = '''
import os
import signal
import time
from pathlib import Path

import gymnasium as gym


class Behave(gym.Wrapper):
    def __init__(self, env, how, marker, at_step, slow_from, sleep):
        super().__init__(env)
        self.how, self.marker, self.at_step, self.steps = how, Path(marker), at_step, 0
        self.slow, self.slow_from, self.sleep = False, slow_from, sleep
        self.first_seed = None

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.slow = seed >= self.slow_from
            self.first_seed = seed if self.first_seed is None else self.first_seed
        if self.how == "raise_after_first" and self.marker.exists():
            raise RuntimeError("the env is still broken")
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        self.steps += 1
        if self.slow:
            time.sleep(self.sleep)
        if self.steps == self.at_step:
            if self.how in ("raise", "raise_after_first"):
                self.marker.touch()
                raise RuntimeError(f"the env broke at step {self.at_step}")
            if self.how == "kill_once" and self.first_seed == 0 and not self.marker.exists():  # worker 0's first copy
                self.marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)
        return self.env.step(action)


def make_env(how="none", marker="marker", at_step=-1, slow_from=10**9, sleep=0.0):
    return Behave(gym.make("CartPole-v1"), how, marker, at_step, slow_from, sleep)
'''

PROFILE = """
ray_ppo:
  agent_id: ppo
  env_id: envs.py:make_env
  env_args: {{how: {how}, marker: {marker}, at_step: {at_step}}}
  num_envs: 4
  seed: 0
  rollout: {{backend: ray, num_workers: 2, cpus_per_worker: 0.01{rollout}}}
  config: {{total_steps: {steps}, num_steps: 64, eval_every_steps: 0, final_eval_episodes: 0, torch_threads: 1,
           log_every_steps: 512, checkpoint_every_steps: {checkpoint}{config}}}
"""


def profile(workdir: Path, how: str = "none", steps: int = 2048, checkpoint: int = 0, rollout: str = "", config: str = "", at_step: int = -1) -> Path:
    """A tiny PPO profile on the ray backend, with the test envs beside it."""
    write(workdir / "envs.py", ENVS)
    text = PROFILE.format(
        how=how, marker=str(workdir / "marker"), at_step=at_step, steps=steps, checkpoint=checkpoint,
        rollout=rollout, config=config,
    )
    return write(workdir / "ray.yaml", text)


def run_json(run: Any) -> dict[str, Any]:
    return json.loads((Path(run.path) / "run.json").read_text())


# --------------------------------------------------------------------------- end to end through train


def test_ppo_trains_on_ray_workers_and_records_the_rollout(workdir: Path, ray_cluster: Any) -> None:
    run = daedalus.train(profile(workdir), runs_dir=workdir / "runs")
    assert run.status == "completed", run
    info = run_json(run)["rollout"]
    assert info["backend"] == "ray" and info["num_workers"] == 2 and info["envs_per_worker"] == 2
    assert info["restarts"] == 0 and info["rounds"] == 2048 // (64 * 4)
    header = (Path(run.path) / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"ray/restarts", "ray/dropped_stale", "ray/empty_waits", "ray/answers_per_round"} <= set(header)


def test_a_worker_killed_mid_training_is_restarted_and_the_run_completes(workdir: Path, ray_cluster: Any) -> None:
    # The first copy's process SIGKILLs itself at its 300th step (once: a marker file remembers).
    run = daedalus.train(profile(workdir, how="kill_once", steps=4096, at_step=300), runs_dir=workdir / "runs")
    assert (workdir / "marker").exists()  # the kill happened
    assert run.status == "completed", run
    info = run_json(run)["rollout"]
    assert info["restarts"] == 1, info
    assert "worker" in info["failures"][0]
    rows = (Path(run.path) / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert float(rows[-1].split(",")[header.index("ray/restarts")]) == 1.0
    assert run_json(run)["steps"] >= 4096


def test_workers_that_keep_failing_fail_the_run_with_its_checkpoints_intact(workdir: Path, ray_cluster: Any) -> None:
    # The env breaks at step 600 of the first process, then at every reset of a restarted one.
    path = profile(workdir, how="raise_after_first", steps=20_000, checkpoint=256, at_step=600, rollout=", max_failures: 2")
    run = daedalus.train(path, runs_dir=workdir / "runs")
    assert run.status == "failed"
    record = run_json(run)
    message = record["error"]["message"]
    assert "failed 3 times in a row" in message and "max_failures: 2" in message and "the env is still broken" in message
    assert "checkpoints are intact" in message
    assert record["rollout"]["restarts"] == 2  # the third failure in a row ended the run
    checkpoints = sorted(p.name for p in (Path(run.path) / "checkpoints").iterdir())
    assert "last" in checkpoints  # the state at the failure
    assert any(name.startswith("step-") for name in checkpoints)  # and the periodic ones before it (the newest 3 are kept)


def test_resume_continues_a_ray_run_from_its_last_checkpoint(workdir: Path, ray_cluster: Any) -> None:
    run = daedalus.train(profile(workdir, steps=2048, checkpoint=1024), runs_dir=workdir / "runs")
    assert run.status == "completed"
    resumed = daedalus.resume(run.path, total_steps=4096, runs_dir=workdir / "runs", trust_code=True)
    assert resumed.status == "completed", resumed
    record = run_json(resumed)
    assert record["steps"] == 4096 and len(record["resumes"]) == 1
    assert record["rollout"]["backend"] == "ray"


def test_observation_statistics_come_back_from_the_workers(workdir: Path, ray_cluster: Any) -> None:
    run = daedalus.train(profile(workdir, config=", normalize_obs: true"), runs_dir=workdir / "runs")
    assert run.status == "completed"
    agent = daedalus.load_run(run.path, trust_code=True).agent
    # Every observation acted on (4 copies x 2048/4 steps, plus the first ones) was counted once.
    assert 2048 <= agent.obs_rms.count <= 2048 + 8 + 1
    assert np.all(agent.obs_rms.var > 0.0) and np.abs(agent.obs_rms.mean).max() < 1.0


def test_train_joins_a_running_cluster_with_ray_address(workdir: Path, ray_cluster: Any) -> None:
    path = profile(workdir, steps=512)
    env = {**os.environ, "DAEDALUS_PLOTS": "0", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(
        [sys.executable, "-m", "daedalus", "train", str(path), "--runs-dir", str(workdir / "runs"), "--ray-address", ray_cluster.address],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (folder,) = (p.parent for p in (workdir / "runs").glob("*/run.json"))
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "completed" and record["rollout"]["backend"] == "ray"
    assert ray_cluster.address in (folder / "profile.yaml").read_text()  # the address is part of the resolved profile


# --------------------------------------------------------------------------- profile and source errors


def test_ray_keys_are_validated_with_the_profile(workdir: Path) -> None:
    from daedalus.config import load_profiles

    bad = write(workdir / "bad.yaml", """
    p:
      agent_id: ppo
      env_id: CartPole-v1
      rollout: {backend: ray, num_workers: 0, min_returns: 3, timeout_s: -1, cpus_per_worker: 0, wokers: 2}
    """)
    with pytest.raises(ProfileError) as caught:
        load_profiles(bad)
    text = str(caught.value)
    for expected in ("num_workers must be an integer >= 1", "timeout_s must be a number of seconds > 0",
                     "cpus_per_worker must be a number > 0", "unknown rollout key 'wokers'"):
        assert expected in text, text
    local = write(workdir / "local.yaml", """
    p:
      agent_id: ppo
      env_id: CartPole-v1
      rollout: {num_workers: 2}
    """)
    with pytest.raises(ProfileError, match="apply to 'backend: ray' only"):
        load_profiles(local)
    too_many = write(workdir / "many.yaml", """
    p:
      agent_id: ppo
      env_id: CartPole-v1
      rollout: {backend: ray, num_workers: 2, min_returns: 3}
    """)
    with pytest.raises(ProfileError, match=r"min_returns \(3\) is more than num_workers \(2\)"):
        load_profiles(too_many)


def test_step_at_a_time_agents_are_refused_on_ray_before_training(workdir: Path) -> None:
    path = write(workdir / "random.yaml", """
    p:
      agent_id: random
      env_id: CartPole-v1
      rollout: {backend: ray}
    """)
    run = daedalus.train(path, runs_dir=workdir / "runs")
    assert run.status == "failed" and run.error is not None
    assert "PPO, A2C, DQN, SAC and TD3" in run.error and "rollout.backend: local" in run.error


def test_missing_ray_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from daedalus.rollout.ray_source import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(DaedalusError, match=r"pip install 'daedalus\[ray\]'") as caught:
        import_ray()
    assert "\n" not in str(caught.value)


# --------------------------------------------------------------------------- the source's rounds


class _Constant:
    """Always action 1; a picklable policy without weights (travels whole to the workers)."""

    def act(self, obs: np.ndarray, state: Any = None, deterministic: bool = False) -> Any:
        from daedalus.rollout.contract import ActOutput

        return ActOutput(actions=np.ones(len(obs), dtype=np.int64))

    def get_weights(self) -> dict[str, np.ndarray]:
        return {}

    def set_weights(self, weights: Any) -> None:
        pass


def _source(workdir: Path, options: Any, seed: int = 0, **env_args: Any) -> Any:
    """A RaySource of 1 copy per worker on the test envs (built in the workers from envs.py)."""
    from ray import cloudpickle

    from daedalus.registry import resolve_ref
    from daedalus.rollout.ray_source import RaySource, worker_source

    write(workdir / "envs.py", ENVS)
    make = resolve_ref(f"{workdir / 'envs.py'}:make_env")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    recipe = partial(_recipe, str(workdir / "envs.py"), env_args)

    def build(first_copy: int) -> Any:
        return partial(worker_source, recipe, 1, "envs", {}, "sync")

    return RaySource(build, 1, options, lambda seed=None: make(**env_args), seed)


def _recipe(path: str, env_args: dict[str, Any]) -> Any:
    from daedalus.registry import resolve_ref

    make = resolve_ref(f"{path}:make_env")
    return lambda seed=None: make(**env_args)


def test_a_sigkilled_worker_is_replaced_and_the_next_round_has_its_rows(workdir: Path, ray_cluster: Any) -> None:
    from daedalus.rollout.ray_source import RayOptions

    source = _source(workdir, RayOptions(num_workers=2, cpus_per_worker=0.01))
    try:
        policy = {"default": _Constant()}
        assert source.sample(policy, 16)["default"].num_rows == 2
        before = source.worker_pids()
        os.kill(before[1], signal.SIGKILL)  # a real SIGKILL to the worker's process
        time.sleep(0.5)
        traj = source.sample(policy, 16)["default"]  # worker 1's call fails; it is replaced
        while traj.num_rows < 2:  # the round the failure happened in may hold worker 0 only
            traj = source.sample(policy, 16)["default"]
        after = source.worker_pids()
        assert after[0] == before[0] and after[1] != before[1]
        assert source.stats.restarts == 1 and "worker 1" in source.stats.failures[0]
        assert traj.obs.shape == (16, 2, 4)
    finally:
        source.close()


def test_a_timeout_with_nothing_ready_waits_on_and_loses_no_round(workdir: Path, ray_cluster: Any) -> None:
    from daedalus.rollout.ray_source import RayOptions

    # Every copy sleeps 20 ms a step: 10 steps take 0.2 s, far beyond the 10 ms timeout.
    source = _source(workdir, RayOptions(num_workers=2, cpus_per_worker=0.01, timeout_s=0.01), sleep=0.02, slow_from=0)
    try:
        policy = {"default": _Constant()}
        first = source.sample(policy, 10)["default"]
        assert source.stats.empty_waits >= 1  # the first wait ended empty-handed, and that was fine
        assert first.num_rows >= 1 and first.num_steps == 10
        rows = first.num_rows
        for _ in range(3):
            rows += source.sample(policy, 10)["default"].num_rows
        assert rows >= 4 * 1 and source.stats.dropped_stale == 0  # same version throughout: nothing stale
    finally:
        source.close()


def test_a_straggler_older_than_max_staleness_is_dropped(workdir: Path, ray_cluster: Any) -> None:
    from daedalus.rollout.ray_source import RayOptions

    # Worker 0 (seed 999) is fast; worker 1 (seed 1000) sleeps 0.1 s a step: 1 s per round of 10 steps.
    options = RayOptions(num_workers=2, cpus_per_worker=0.01, min_returns=1, max_staleness=1)
    source = _source(workdir, options, seed=999, sleep=0.1, slow_from=1000)
    try:
        policy = {"default": _Constant()}
        first = source.sample(policy, 10, policy_version=0)["default"]
        assert first.num_rows == 1 and first.policy_version == 0  # the fast worker's answer alone
        second = source.sample(policy, 10, policy_version=5)["default"]
        assert second.num_rows == 1 and second.policy_version == 5
        time.sleep(1.5)  # the slow worker's version-0 answer arrives: 5 versions behind
        third = source.sample(policy, 10, policy_version=6)["default"]
        assert source.stats.dropped_stale == 1
        assert third.policy_version >= 5 and third.num_rows == 1
    finally:
        source.close()


def test_a_ray_source_refuses_step_level_use(workdir: Path, ray_cluster: Any) -> None:
    from daedalus.rollout.ray_source import RayOptions

    source = _source(workdir, RayOptions(num_workers=1, cpus_per_worker=0.01))
    try:
        with pytest.raises(DaedalusError, match="rollout.backend: local or subprocess"):
            source.step(np.zeros(1, dtype=np.int64))
    finally:
        source.close()


def test_more_cpus_than_the_cluster_has_is_an_error_not_a_hang(workdir: Path, ray_cluster: Any) -> None:
    from daedalus.rollout.ray_source import RayOptions

    source = _source(workdir, RayOptions(num_workers=3, cpus_per_worker=2.0))
    try:
        with pytest.raises(DaedalusError, match=r"need 6 CPUs; the cluster has 4"):
            source.sample({"default": _Constant()}, 4)
    finally:
        source.close()


# --------------------------------------------------------------------------- replay algorithms on Ray


@pytest.mark.parametrize(("agent_id", "env_id"), [("dqn", "CartPole-v1"), ("sac", "Pendulum-v1"), ("td3", "Pendulum-v1")])
def test_replay_algorithms_fill_their_buffer_from_ray_workers(workdir: Path, ray_cluster: Any, agent_id: str, env_id: str) -> None:
    path = write(workdir / "replay.yaml", f"""
    p:
      agent_id: {agent_id}
      env_id: {env_id}
      num_envs: 2
      seed: 0
      rollout: {{backend: ray, num_workers: 2, cpus_per_worker: 0.01, steps_per_round: 16}}
      config: {{total_steps: 600, learning_starts: 200, eval_every_steps: 0, final_eval_episodes: 1, torch_threads: 1,
               log_every_steps: 200, checkpoint_every_steps: 0}}
    """)
    run = daedalus.train(path, runs_dir=workdir / "runs")
    assert run.status == "completed", run
    record = run_json(run)
    rounds = record["rollout"]["rounds"]
    assert record["rollout"]["backend"] == "ray" and rounds >= 1
    # Whole rounds of at least 16 steps x 2 copies (more when train_frequency_steps asks for more).
    assert record["steps"] >= 600 and record["steps"] % rounds == 0 and record["steps"] // rounds >= 32
    agent = daedalus.load_run(run.path).agent
    assert agent.num_updates > 0


def test_explore_policy_copies_act_like_the_learner_once_greedy(ray_cluster: Any) -> None:
    import gymnasium as gym

    from daedalus.algos.common import ExplorePolicy
    from daedalus.algos.dqn import DQNAgent, DQNConfig

    env = gym.make("CartPole-v1")
    config = DQNConfig(total_steps=1000, learning_starts=0, exploration_final_eps=0.0, exploration_fraction=0.01)
    learner = DQNAgent(env.observation_space, env.action_space, config, seed=3)
    learner.global_step = 900  # past the exploration schedule: epsilon 0, greedy actions
    policy = ExplorePolicy(learner)
    copy = policy.copy_factory(0)(1)
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    assert copy.agent.global_step == 0  # a fresh copy is at the start of the schedule: epsilon 1, random actions
    assert not np.array_equal(copy.act(obs).actions, learner.greedy(obs))
    copy.set_weights(policy.get_weights())
    assert copy.agent.global_step == 900
    np.testing.assert_array_equal(copy.act(obs).actions, learner.greedy(obs))


# --------------------------------------------------------------------------- multi-agent on Ray


@pytest.mark.parametrize("which", ["simple_tag", "tictactoe"])
def test_multi_agent_profiles_collect_on_ray_workers(workdir: Path, ray_cluster: Any, which: str) -> None:
    pytest.importorskip("mpe2")
    envs = {
        # two policies mapped by prefix, one of them a random player that never trains
        "simple_tag": """env_id: mpe2:simple_tag_v3
      env_args: {num_good: 1, num_adversaries: 3, num_obstacles: 2, max_cycles: 25, continuous_actions: false}
      policies: {chaser: {}, prey: {random: true}}
      policy_mapping: {adversary_: chaser, agent_: prey}""",
        # turn-based (AEC) with action masks
        "tictactoe": "env_id: pettingzoo.classic:tictactoe_v3",
    }
    path = write(workdir / "ma.yaml", f"""
    p:
      agent_id: ppo
      {envs[which]}
      num_envs: 4
      seed: 0
      rollout: {{backend: ray, num_workers: 2, cpus_per_worker: 0.01}}
      config: {{total_steps: 1600, num_steps: 50, eval_every_steps: 0, final_eval_episodes: 4, torch_threads: 1,
               log_every_steps: 400, checkpoint_every_steps: 0}}
    """)
    run = daedalus.train(path, runs_dir=workdir / "runs")
    assert run.status == "completed", run
    record = run_json(run)
    assert record["steps"] == 1600 and record["rollout"]["rounds"] == 8  # 50 steps x 4 copies a round
    header = (Path(run.path) / "metrics.csv").read_text().splitlines()[0].split(",")
    group = "chaser" if which == "simple_tag" else "default"
    assert f"charts/{group}/episode_return" in header and "ray/answers_per_round" in header
    evaluation = run.artifacts["final_evaluation"]
    assert evaluation["episodes"] == 4 and group in evaluation["policies"]
