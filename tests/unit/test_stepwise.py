"""Stepwise agents and the default loop: every loop option, custom loops, loop-key errors,
create-default, evaluate PROFILE, test_agent and the registry hook.

The agents and the env live in a helper file written into each test's working directory and
are referenced the way users reference theirs (``helpers.py:CountingAgent``). The env plays
episodes of exactly ``length`` steps with reward 1 per step, so counts are exact.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from daedalus import api
from daedalus.errors import DaedalusError, ProfileError
from daedalus.registry import resolve_ref
from tests.conftest import write

pytest.importorskip("gymnasium")

HELPERS = '''
import time

import gymnasium as gym
import numpy as np

from daedalus import BaseLoop, StepAgent

CALLS = []
ENVS = []


class CountdownEnv(gym.Env):
    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 30}

    def __init__(self, length=5, render_mode=None):
        self.length = length
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Discrete(length + 1)
        self.action_space = gym.spaces.Discrete(2)
        self.renders = 0
        ENVS.append(self)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return 0, {}

    def step(self, action):
        self.t += 1
        return self.t, 1.0, self.t >= self.length, False, {}

    def render(self):
        self.renders += 1
        if self.render_mode == "rgb_array":
            return np.full((16, 16, 3), (40 * self.t) % 255, dtype=np.uint8)
        return None


def make_env(length=5, render_mode=None):
    return CountdownEnv(length, render_mode)


class CountingAgent(StepAgent):
    """Records every call."""

    @staticmethod
    def get_default_parameters():
        return {"sleep_s": 0.0, "alpha": 1}

    def act(self, state, episode_num):
        CALLS.append(("act", episode_num, self.training))
        time.sleep(self.parameters["sleep_s"])
        return 0

    def memorize(self, last_ob, action, reward, done, ob):
        CALLS.append(("memorize", done, self.last_terminated, self.last_truncated))

    def update(self, episode_num):
        CALLS.append(("update", episode_num))


class FlagAgent(CountingAgent):
    def memorize(self, last_ob, action, reward, done, ob, terminated=None, truncated=None):
        CALLS.append(("flags", done, terminated, truncated))


class SavingAgent(CountingAgent):
    def save(self):
        return b"state"

    def load(self, data):
        self.loaded = data


class ReadmeBaseAgent:
    """Gym Loop's README BaseAgent, verbatim in shape (no Daedalus base class)."""

    @staticmethod
    def get_default_parameters():
        raise NotImplementedError()

    def act(self, state, episode_num):
        raise NotImplementedError()

    def memorize(self, last_ob, action, reward, done, ob):
        raise NotImplementedError()

    def update(self, episode_num):
        raise NotImplementedError()

    def __init__(self, **params):
        super().__init__()
        self.parameters = self.get_default_parameters()
        self.parameters.update(params)


class DuckAgent(ReadmeBaseAgent):
    @staticmethod
    def get_default_parameters():
        return {"gain": 2}

    def act(self, state, episode_num):
        CALLS.append(("duck-act", self.parameters["gain"], self.action_space.n, self.training))
        return 1

    def memorize(self, last_ob, action, reward, done, ob):
        CALLS.append(("duck-memorize", self.last_terminated))

    def update(self, episode_num):
        CALLS.append(("duck-update", episode_num))


class ReadmeOnStepAgent(StepAgent):
    """The README BaseAgent body, subclassing StepAgent."""

    @staticmethod
    def get_default_parameters():
        raise NotImplementedError()

    def __init__(self, **params):
        super().__init__()
        self.parameters = self.get_default_parameters()
        self.parameters.update(params)


class ReadmeChild(ReadmeOnStepAgent):
    @staticmethod
    def get_default_parameters():
        return {"x": 1}

    def act(self, state, episode_num):
        return 0


class MyLoop(BaseLoop):
    @staticmethod
    def get_default_parameters():
        return {"episodes": 2, "tag": "a"}

    def train(self):
        env = self.env_factory(0)
        for episode in range(self.parameters["episodes"]):
            env.reset()
            self.agent.act(0, episode)
            self.global_step += 1
        self.artifacts["custom"] = dict(self.parameters)
        self.checkpoint("custom-1")
'''


@pytest.fixture
def helpers(workdir: Path) -> Any:
    """The helper module (written into the working directory), with its call log cleared."""
    write(workdir / "helpers.py", HELPERS)
    helper_module(workdir).CALLS.clear()
    return workdir


def helper_module(workdir: Path) -> Any:
    """The imported helpers.py (a profile reference names a class or function, not a list)."""
    return sys.modules[resolve_ref("helpers.py:make_env", workdir).__module__]


def calls(workdir: Path) -> list[tuple[Any, ...]]:
    return helper_module(workdir).CALLS  # type: ignore[no-any-return]


def train(
    workdir: Path, loop: dict[str, Any] | None = None, agent: str = "CountingAgent", **fields: Any
) -> api.RunResult:
    fields.setdefault("env_id", "helpers.py:make_env")
    result = api.train(
        agent_id=f"helpers.py:{agent}", loop=loop, runs_dir=workdir / "runs", **fields
    )
    assert result.status == "completed", result.error
    return result


def episodes_csv(folder: Path) -> list[dict[str, str]]:
    with open(folder / "episodes.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def checkpoint_names(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


# --------------------------------------------------------------------------- loop options


def test_max_episodes(helpers: Path) -> None:
    result = train(helpers, {"max_episodes": 3, "eval_episodes": 0})
    assert result.steps == 15
    rows = episodes_csv(result.path)
    assert [r["episode"] for r in rows] == ["0", "1", "2"]
    assert result.artifacts["episode_returns"] == [5.0, 5.0, 5.0]
    acts = [c for c in calls(helpers) if c[0] == "act"]
    assert len(acts) == 15 and {c[1] for c in acts} == {0, 1, 2} and all(c[2] for c in acts)


def test_max_episode_len_truncates(helpers: Path) -> None:
    result = train(
        helpers,
        {"max_episodes": 2, "max_episode_len": 4, "eval_episodes": 0},
        env_args={"length": 10},
    )
    assert result.artifacts["episode_lengths"] == [4, 4]
    memorized = [c for c in calls(helpers) if c[0] == "memorize"]
    # Every 4th transition ends the episode by truncation, not termination.
    assert [c[1:] for c in memorized[3::4]] == [(True, False, True)] * 2
    assert all(c[1:] == (False, False, False) for i, c in enumerate(memorized) if i % 4 != 3)
    assert [r["truncated"] for r in episodes_csv(result.path)] == ["1", "1"]
    # An episode that ends on its own before the cut is terminated.
    calls(helpers).clear()
    train(
        helpers,
        {"max_episodes": 1, "max_episode_len": 4, "eval_episodes": 0},
        env_args={"length": 3},
    )
    assert [c[1:] for c in calls(helpers) if c[0] == "memorize"][-1] == (True, True, False)


def test_memorize_gets_flags_when_it_accepts_them(helpers: Path) -> None:
    train(helpers, {"max_episodes": 1, "max_episode_len": 2, "eval_episodes": 0}, agent="FlagAgent")
    assert [c for c in calls(helpers) if c[0] == "flags"] == [
        ("flags", False, False, False),
        ("flags", True, False, True),
    ]


def test_episodes_per_checkpoint(helpers: Path) -> None:
    result = train(
        helpers,
        {"max_episodes": 5, "episodes_per_checkpoint": 2, "eval_episodes": 0},
        agent="SavingAgent",
    )
    assert checkpoint_names(result.path) == ["episode-2", "episode-4", "final"]
    meta = json.loads((result.path / "checkpoints" / "episode-4" / "meta.json").read_text())
    assert meta["step"] == 20 and meta["format"] == "bytes"
    assert (result.path / "checkpoints" / "final" / "agent.bin").read_bytes() == b"state"
    result = train(
        helpers,
        {"max_episodes": 5, "episodes_per_checkpoint": None, "eval_episodes": 0},
        agent="SavingAgent",
    )
    assert checkpoint_names(result.path) == ["final"]


def test_time_per_checkpoint(helpers: Path) -> None:
    loop = {"max_episodes": 3, "episodes_per_checkpoint": None, "eval_episodes": 0}
    result = train(
        helpers,
        {**loop, "time_per_checkpoint": 1e-4},
        agent="SavingAgent",
        config={"sleep_s": 0.001},
    )
    assert checkpoint_names(result.path) == ["episode-1", "episode-2", "final"]
    result = train(helpers, {**loop, "time_per_checkpoint": 3600.0}, agent="SavingAgent")
    assert checkpoint_names(result.path) == ["final"]


def test_eval_episodes(helpers: Path) -> None:
    result = train(helpers, {"max_episodes": 2, "eval_episodes": 3})
    final = result.artifacts["final_evaluation"]
    assert final["n_episodes"] == 3 and final["mean_return"] == 5.0
    after_training = calls(helpers)[2 * 5 * 3 :]
    assert len(after_training) == 15 and all(
        c[0] == "act" and c[2] is False for c in after_training
    )
    run = json.loads((result.path / "run.json").read_text())
    assert run["final_return"] == 5.0
    result = train(helpers, {"max_episodes": 2, "eval_episodes": 0})
    assert "final_evaluation" not in result.artifacts


def test_random_episodes(helpers: Path) -> None:
    result = train(helpers, {"max_episodes": 4, "random_episodes": 2, "eval_episodes": 0})
    log = calls(helpers)
    assert {c[1] for c in log if c[0] == "act"} == {2, 3}
    assert sum(c[0] == "memorize" for c in log) == 20
    assert [c[1] for c in log if c[0] == "update"] == [2] * 5 + [3] * 5
    assert [r["random"] for r in episodes_csv(result.path)] == ["1", "1", "0", "0"]


def test_render_creates_a_human_env(helpers: Path) -> None:
    envs = helper_module(helpers).ENVS
    envs.clear()
    train(helpers, {"max_episodes": 1, "render": True, "eval_episodes": 1})
    assert [e.render_mode for e in envs].count(
        "human"
    ) == 2  # training env, then the evaluation env


def test_record_writes_videos_on_the_cubic_schedule(helpers: Path) -> None:
    pytest.importorskip("imageio")
    result = train(
        helpers, {"max_episodes": 9, "record": True, "eval_episodes": 0}, env_args={"length": 3}
    )
    videos = sorted(p.stem for p in (result.path / "videos").iterdir())
    assert videos == ["episode-0", "episode-1", "episode-8"]
    assert all(p.stat().st_size > 0 for p in (result.path / "videos").iterdir())


def test_logdir(helpers: Path) -> None:
    result = train(helpers, {"max_episodes": 2, "eval_episodes": 0})
    assert len(episodes_csv(result.path)) == 2
    result = train(helpers, {"max_episodes": 2, "eval_episodes": 0, "logdir": "extra_logs"})
    assert not (result.path / "episodes.csv").exists()
    assert len(episodes_csv(helpers / "extra_logs")) == 2
    assert any((helpers / "extra_logs" / "tb").iterdir())


def test_logs_progress_metrics_and_time_split(helpers: Path) -> None:
    result = train(helpers, {"max_episodes": 2, "eval_episodes": 1})
    with open(result.path / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["charts/episode_return"]) for r in rows[:2]] == [5.0, 5.0]
    assert [float(r["charts/episode_length"]) for r in rows[:2]] == [5.0, 5.0]
    assert {"time/env", "time/inference", "time/learn", "charts/steps_per_second"} <= set(rows[0])
    assert float(rows[-1]["eval/mean_return"]) == 5.0


# --------------------------------------------------------------------------- loop section


def test_loop_section_forms(helpers: Path) -> None:
    result = train(helpers, {"parameters": {"max_episodes": 2, "eval_episodes": 0}})
    assert result.steps == 10
    saved = yaml.safe_load((result.path / "profile.yaml").read_text())
    loop = next(iter(saved.values()))["loop"]
    assert loop["max_episodes"] == 2 and loop["max_episode_len"] == 5000  # every default filled in


def test_custom_loop_class(helpers: Path) -> None:
    result = train(helpers, {"class": "helpers.py:MyLoop", "parameters": {"episodes": 3}})
    assert result.artifacts["custom"] == {"episodes": 3, "tag": "a"}
    assert checkpoint_names(result.path) == ["custom-1", "final"]
    saved = next(iter(yaml.safe_load((result.path / "profile.yaml").read_text()).values()))["loop"]
    assert saved["class"] == f"{(helpers / 'helpers.py').resolve()}:MyLoop"


@pytest.mark.parametrize(
    ("loop", "message"),
    [
        (
            {"max_episode": 3},
            "unknown loop key 'max_episode' for DefaultLoop. Did you mean 'max_episodes'?",
        ),
        ({"parameters": {"eval_episode": 1}}, "Did you mean 'eval_episodes'?"),
        (
            {"parameters": {}, "max_episodes": 3},
            "unknown loop key 'max_episodes'. Move it under 'parameters'",
        ),
        ({"clas": "x:Y", "parameters": {}}, "Did you mean 'class'?"),
        (
            {"class": "helpers.py:MyLoop", "parameters": {"episode": 1}},
            "for MyLoop. Did you mean 'episodes'?",
        ),
        ({"max_episodes": "ten"}, "loop key 'max_episodes' must be int, got 'ten'"),
        (
            {"max_episodes": 2, "random_episodes": 3},
            "random_episodes must be between 0 and max_episodes",
        ),
        ({"render": True, "record": True}, "render and record cannot both be true"),
        ({"class": "helpers.py:CountingAgent"}, "not a loop class"),
        ({"class": "helpers.py:NoSuchLoop"}, "has no attribute 'NoSuchLoop'"),
    ],
)
def test_loop_key_errors(helpers: Path, loop: dict[str, Any], message: str) -> None:
    write(
        helpers / "p.yaml",
        f"""
        p:
          agent_id: helpers.py:CountingAgent
          env_id: helpers.py:make_env
          loop: {json.dumps(loop)}
        """,
    )
    with pytest.raises(ProfileError) as info:
        api.load(helpers / "p.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith(f"{helpers / 'p.yaml'}:4: profile 'p'")
    assert not (helpers / "runs").exists()


def test_stepwise_profiles_run_one_env_and_check_config_keys(helpers: Path) -> None:
    with pytest.raises(ProfileError, match="num_envs is 4"):
        api.train(agent_id="helpers.py:CountingAgent", env_id="helpers.py:make_env", num_envs=4)
    with pytest.raises(ProfileError, match="unknown config key 'alpa'.*Did you mean 'alpha'"):
        api.train(
            agent_id="helpers.py:CountingAgent", env_id="helpers.py:make_env", config={"alpa": 2}
        )


# --------------------------------------------------------------------------- agents


def test_gym_loop_readme_agents_without_and_with_stepagent(helpers: Path) -> None:
    result = train(
        helpers, {"max_episodes": 1, "eval_episodes": 1}, agent="DuckAgent", config={"gain": 3}
    )
    log = calls(helpers)
    assert log[0] == ("duck-act", 3, 2, True)
    assert ("duck-memorize", True) in log and ("duck-update", 0) in log
    assert log[-1] == ("duck-act", 3, 2, False)
    assert json.loads((result.path / "run.json").read_text())["checkpoint_format"] == "none"
    result = train(
        helpers, {"max_episodes": 1, "eval_episodes": 0}, agent="ReadmeChild", config={"x": 5}
    )
    with pytest.raises(ProfileError, match="get_default_parameters\\(\\) is not implemented"):
        api.train(agent_id="helpers.py:ReadmeBaseAgent", env_id="helpers.py:make_env")


def test_agents_without_save_get_a_note(helpers: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = train(helpers, {"max_episodes": 1, "eval_episodes": 0})
    out = capsys.readouterr().out
    assert "note: CountingAgent does not implement save()/load()" in out
    assert result.artifacts["notes"]
    assert json.loads((result.path / "run.json").read_text())["checkpoint_format"] == "none"
    meta = json.loads((result.path / "checkpoints" / "final" / "meta.json").read_text())
    assert "nothing was saved" in meta["note"]


def test_saved_agent_is_restored_by_load_run(helpers: Path) -> None:
    result = train(helpers, {"max_episodes": 1, "eval_episodes": 0}, agent="SavingAgent")
    loaded = api.load_run(result.path, trust_code=True)
    assert loaded.agent.loaded == b"state"
    assert loaded.agent.action_space.n == 2 and loaded.agent.training is False


# ------------------------------------------------------------------ create-default, evaluate


def test_create_default_for_a_stepwise_agent(helpers: Path) -> None:
    from daedalus import LoopConfig, create_default
    from daedalus.config import config_defaults

    data = create_default("helpers.py:CountingAgent")
    ((profile_id, profile),) = data.items()
    assert profile_id == "counting_agent_pendulum"
    assert profile["env_id"] == "Pendulum-v1"
    assert profile["config"] == {"sleep_s": 0.0, "alpha": 1}
    assert profile["loop"] == config_defaults(LoopConfig)
    custom = create_default("helpers.py:CountingAgent", "helpers.py:make_env", "helpers.py:MyLoop")
    assert next(iter(custom.values()))["loop"] == {
        "class": "helpers.py:MyLoop",
        "parameters": {"episodes": 2, "tag": "a"},
    }


def test_create_default_for_other_agents(helpers: Path) -> None:
    from daedalus import create_default

    write(
        helpers / "specs.py",
        """
        from daedalus.specs import AgentSpec
        DEFAULTS = {"lr": 0.1, "layers": [64, 64]}
        SPEC = AgentSpec("mine", lambda: None, lambda *a: None, default_config=DEFAULTS)
        """,
    )
    profile = next(iter(create_default("specs.py:SPEC").values()))
    assert profile["env_id"] == "CartPole-v1" and profile["config"] == {
        "lr": 0.1,
        "layers": [64, 64],
    }
    assert "loop" not in profile
    with pytest.raises(DaedalusError, match="--loop applies to stepwise agents"):
        create_default("specs.py:SPEC", loop_ref="helpers.py:MyLoop")


def test_create_default_for_a_typed_builtin_agent(workdir: Path) -> None:
    pytest.importorskip("torch")
    from daedalus import create_default
    from daedalus.config import config_defaults
    from daedalus.registry import get_agent

    profile = next(iter(create_default("ppo").values()))
    assert profile["env_id"] == "CartPole-v1"
    assert profile["config"] == config_defaults(get_agent("ppo").config_class)  # type: ignore[arg-type]


def test_cli_create_default_then_train_then_evaluate_profile(
    helpers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from daedalus.cli.main import main

    main(["create-default", "--agent", "helpers.py:CountingAgent", "--env", "helpers.py:make_env"])
    printed = capsys.readouterr().out
    assert "max_episodes: 100  # Episodes to run in total" in printed
    main(
        [
            "create-default",
            "--agent",
            "helpers.py:CountingAgent",
            "--env",
            "helpers.py:make_env",
            "-o",
            "run.yaml",
        ]
    )
    assert yaml.safe_load((helpers / "run.yaml").read_text()) == yaml.safe_load(printed)
    with pytest.raises(SystemExit) as exit_info:
        main(["create-default", "--agent", "helpers.py:CountingAgent", "-o", "run.yaml"])
    assert exit_info.value.code == 2 and "exists; pass --force" in capsys.readouterr().err
    main(["train", "run.yaml", "--set", "loop.max_episodes=2", "--set", "loop.eval_episodes=0"])
    capsys.readouterr()
    calls(helpers).clear()
    main(["evaluate", "run.yaml", "counting_agent_make_env", "--episodes", "3"])
    out = capsys.readouterr().out
    assert out.startswith("5.00 ± 0.00") and "over 3 episodes" in out
    assert {c[0] for c in calls(helpers)} == {"act"}  # no memorize, no update


def test_evaluate_profile_defaults_and_errors(helpers: Path) -> None:
    from daedalus import evaluate_profile

    write(
        helpers / "p.yaml",
        """
        stepwise:
          agent_id: helpers.py:CountingAgent
          env_id: helpers.py:make_env
          loop: {eval_episodes: 4, max_episode_len: 2}
        builtin:
          agent_id: random
          env_id: helpers.py:make_env
        """,
    )
    result = evaluate_profile(helpers / "p.yaml", "stepwise")
    assert result.n_episodes == 4 and result.lengths == [2, 2, 2, 2]
    with pytest.raises(ProfileError, match="several profiles"):
        evaluate_profile(helpers / "p.yaml")
    with pytest.raises(ProfileError, match="not a stepwise agent"):
        evaluate_profile(helpers / "p.yaml", "builtin")


def test_test_agent_measures(helpers: Path) -> None:
    from daedalus import test_agent
    from daedalus.config import profile_from_dict
    from daedalus.envs.make import env_factory_for

    profile = profile_from_dict(
        "t", {"agent_id": "x", "env_id": "helpers.py:make_env", "env_args": {"length": 4}}
    )
    make_env = env_factory_for(profile)
    agent = resolve_ref("helpers.py:CountingAgent", helpers)()
    assert test_agent(agent, make_env, max_steps=10, test_episodes=3) == 4.0
    assert (
        test_agent(agent, make_env, max_steps=3, test_episodes=3, evaluation_measure="reward")
        == 3.0
    )
    assert test_agent(agent, make_env, 10, 2, "time_and_reward") == (4.0, 4.0)
    duck = resolve_ref("helpers.py:DuckAgent", helpers)()
    duck.action_space = make_env(None).action_space
    assert test_agent(duck, make_env, 10, 2, "reward") == 4.0
    with pytest.raises(DaedalusError, match="Did you mean 'reward'"):
        test_agent(agent, make_env, 10, 1, "rewards")


# --------------------------------------------------------------------------- import cost


def test_import_stays_light_and_exports_are_lazy() -> None:
    code = (
        "import sys, daedalus\n"
        "assert 'daedalus.agents.stepwise' not in sys.modules\n"
        "assert 'numpy' not in sys.modules and 'gymnasium' not in sys.modules\n"
        "assert daedalus.StepAgent.__name__ == 'StepAgent'\n"
        "assert daedalus.BaseLoop.__name__ == 'BaseLoop'\n"
        "assert 'torch' not in sys.modules and 'gymnasium' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
