"""api: validation before training, the factory-by-name contract, run records, load_run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import daedalus
from daedalus import api
from daedalus.errors import DaedalusError, ProfileError, TrustError
from tests.conftest import write

AGENT_FILE = """
import pickle
from daedalus import Agent, register_agent


class Counter(Agent):
    def __init__(self, n_actions, obs_dim):
        super().__init__("counter")
        self.n_actions, self.obs_dim, self.calls = n_actions, obs_dim, 0

    def get_action(self, obs, extra_state=None):
        self.calls += 1
        return self.calls % self.n_actions, extra_state

    def save(self):
        return pickle.dumps({"calls": self.calls})

    def load(self, agent_data):
        self.calls = pickle.loads(agent_data)["calls"]


def wrapper(env_factory, agent, config, artifacts, save_callback):
    env = env_factory(0)
    obs, _ = env.reset()
    for step in range(config.total_steps):
        action, _ = agent.get_action(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
        if config.get("fail_at") == step:
            raise RuntimeError("exploded on purpose")
    artifacts["loss"] = [1.0, 0.5]
    save_callback(agent, artifacts, config.total_steps, "peak")


SPEC = register_agent("counter", lambda n_actions, obs_dim: Counter(n_actions, obs_dim), wrapper)


def no_wrapper_factory():
    return Counter(2, 4)


NO_WRAPPER = register_agent("no-wrapper", no_wrapper_factory)
BAD_FACTORY = register_agent("bad-factory", lambda n_actions, mystery: None, wrapper)
"""


@pytest.fixture
def project(workdir: Path) -> Path:
    write(workdir / "agents.py", AGENT_FILE)
    return workdir


def test_train_records_everything(project: Path) -> None:
    result = daedalus.train(agent_id="agents.py:SPEC", env_id="CartPole-v1", config={"total_steps": 50}, runs_dir=project / "runs")
    assert result.status == "completed" and result.steps == 50
    run = json.loads((result.path / "run.json").read_text())
    assert run["status"] == "completed" and run["agent_id"] == "agents.py:SPEC"
    assert json.loads((result.path / "artifacts.json").read_text()) == {"loss": [1.0, 0.5]}
    saved = (result.path / "profile.yaml").read_text()
    assert f"{project / 'agents.py'}:SPEC" in saved  # file references made absolute
    # The agent lives in a file, not in a project module: loading the run needs trust_code.
    with pytest.raises(TrustError, match=r"refers to '.*agents\.py:SPEC'.*--trust-code"):
        daedalus.load_run(result.path)
    loaded = daedalus.load_run(result.path, trust_code=True)
    assert loaded.checkpoint == "final" and loaded.agent.calls == 50
    assert loaded.agent.n_actions == 2 and loaded.agent.obs_dim == 4
    peak = daedalus.load_run(result.path, checkpoint="peak", trust_code=True)
    assert peak.agent.calls == 50


def test_failure_keeps_the_run(project: Path) -> None:
    result = daedalus.train(agent_id="agents.py:SPEC", env_id="CartPole-v1", config={"total_steps": 50, "fail_at": 10}, runs_dir=project / "runs")
    assert result.status == "failed" and result.error == "exploded on purpose"
    run = json.loads((result.path / "run.json").read_text())
    assert run["error"]["type"] == "RuntimeError" and "Traceback" in run["error"]["traceback"]
    assert daedalus.load_run(result.path, trust_code=True).checkpoint == "last"


def test_validation_happens_before_any_training(project: Path) -> None:
    path = write(project / "p.yaml", """
        good:
          agent_id: agents.py:SPEC
          env_id: CartPole-v1
          config: {total_steps: 10}
        bad:
          agent_id: agents.py:SPEC
          env_id: CartPol-v1
    """)
    with pytest.raises(ProfileError, match=r"p\.yaml:7: profile 'bad': unknown environment 'CartPol-v1'\. Did you mean .*'CartPole-v1'"):
        api.train_many(path, runs_dir=project / "runs")
    assert not (project / "runs").exists()


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        ("agents.py:NO_WRAPPER", "registered without a training wrapper"),
        ("nope", r"p\.yaml:2: profile 'p': unknown agent 'nope'.*Known agents"),
    ],
)
def test_agent_errors(project: Path, agent: str, message: str) -> None:
    path = write(project / "p.yaml", f"p:\n  agent_id: {agent}\n  env_id: CartPole-v1\n")
    with pytest.raises(ProfileError, match=message):
        api.load(path)


def test_factory_asking_for_unknown_argument(project: Path) -> None:
    result = daedalus.train(agent_id="agents.py:BAD_FACTORY", env_id="CartPole-v1", runs_dir=project / "runs")
    assert result.status == "failed"
    assert "asks for 'mystery'" in (result.error or "")


def test_describe_builtin_agent() -> None:
    info = api.describe_agent("random")
    assert info["agent_id"] == "random" and info["fields"] == []


@pytest.mark.parametrize(("agent", "env"), [("dqn", "Pendulum-v1"), ("sac", "CartPole-v1"), ("td3", "CartPole-v1")])
def test_wrong_action_space_is_a_profile_error(workdir: Path, agent: str, env: str) -> None:
    path = write(workdir / "p.yaml", f"p:\n  agent_id: {agent}\n  env_id: {env}\n")
    with pytest.raises(ProfileError, match=rf"p\.yaml:2: profile 'p': agent '{agent}' acts in .* action spaces, but '{env}' has"):
        api.load(path)


def test_evaluate_target_tells_a_run_from_a_profile_file(project: Path) -> None:
    result = daedalus.train(agent_id="agents.py:SPEC", env_id="CartPole-v1", config={"total_steps": 20}, runs_dir=project / "runs")
    evaluation, eval_file = api.evaluate_target(result.path, episodes=2, trust_code=True)
    assert evaluation.n_episodes == 2 and eval_file == result.path / "eval.json" and eval_file.is_file()
    with pytest.raises(DaedalusError, match="only goes with a profile file"):
        api.evaluate_target(result.path, "p", trust_code=True)
    profile = write(project / "p.yaml", "p:\n  agent_id: agents.py:SPEC\n  env_id: CartPole-v1\n")
    with pytest.raises(ProfileError, match="not a stepwise agent"):  # a profile file, not a run
        api.evaluate_target(profile)
