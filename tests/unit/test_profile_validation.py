"""Complete validation, written as a user's broken profiles: every problem, with file, line and fix, at once."""

from __future__ import annotations

from pathlib import Path

import pytest

import daedalus
from daedalus import api
from daedalus.errors import ProfileError
from tests.conftest import write


def problems_of(path: Path, *overrides: str) -> list[str]:
    with pytest.raises(ProfileError) as info:
        api.load(path, overrides=list(overrides))
    return info.value.problems


def test_every_problem_of_every_profile_is_reported_at_once(workdir: Path) -> None:
    path = write(workdir / "p.yaml", """
        defaults:
          learning_rate: -1
        first:
          agent_id: ppo
          env_id: CartPole-v1
          config:
            gamma: 1.5
            hidden_sizes: [64, 0]
            clip_coef: .nan
            activation: relux
            totl_steps: 5
        second:
          agent_id: dqn
          env_id: CartPole-v1
          num_envs: 0
    """)
    problems = problems_of(path)
    assert problems == [
        f"{path}:15: profile 'second': 'num_envs' must be an integer from 1 to 4096, got 0 (int). Write e.g. 'num_envs: 8'.",
        f"{path}:2: profile 'first': 'learning_rate' must be > 0, got -1.0. Change it to an allowed value (the default is 0.00025).",
        f"{path}:7: profile 'first': 'gamma' must be within [0, 1], got 1.5. Change it to an allowed value (the default is 0.99).",
        f"{path}:8: profile 'first': every element of 'hidden_sizes' must be >= 1, got 0. Change it to an allowed value (the default is [64, 64]).",
        f"{path}:9: profile 'first': 'clip_coef' must be a finite number, got nan. Change it to an allowed value (the default is 0.2).",
        f"{path}:10: profile 'first': 'activation' must be one of 'elu', 'gelu', 'relu', 'silu', 'tanh', got 'relux'. Change it to an allowed value (the default is 'tanh').",
        f"{path}:11: profile 'first': unknown config key 'totl_steps' for agent 'ppo'. Did you mean 'total_steps'? Run 'daedalus describe agent ppo' to see every parameter.",
        f"{path}:2: profile 'second': 'learning_rate' must be > 0, got -1.0. Change it to an allowed value (the default is 0.0023).",
    ]


def test_the_message_lists_problems_under_a_count(workdir: Path) -> None:
    path = write(workdir / "p.yaml", """
        p:
          agent_id: ppo
          env_id: CartPole-v1
          config: {learning_rate: 0, gamma: -0.1}
    """)
    with pytest.raises(ProfileError) as info:
        api.load(path)
    text = str(info.value)
    assert text.startswith("2 problems; fix them all, then run the command again:\n  - ")
    assert "'learning_rate' must be > 0, got 0.0" in text and "'gamma' must be within [0, 1], got -0.1" in text


def test_set_errors_name_the_override_not_a_line(workdir: Path) -> None:
    path = write(workdir / "p.yaml", "p:\n  agent_id: ppo\n  env_id: CartPole-v1\n")
    assert problems_of(path, "config.learning_rate=-3e-4", "num_envs=zero") == [
        "--set num_envs=zero: profile 'p': 'num_envs' must be an integer from 1 to 4096, got 'zero' (str). Write e.g. 'num_envs: 8'.",
        "--set config.learning_rate=-3e-4: profile 'p': 'learning_rate' must be > 0, got -0.0003. Change it to an allowed value (the default is 0.00025).",
    ]
    assert problems_of(path, "config=3", "config.gamma=2")[0].startswith("--set config.gamma=2: '")


@pytest.mark.parametrize(
    ("device", "fragment"),
    [
        ("cuda:7", "device 'cuda:7' is not available: torch sees no CUDA GPU on this machine"),
        ("gpu", "unknown device 'gpu'. Use 'device: cpu', or 'device: auto'"),
        ("mps", "device 'mps' is not available on this machine"),
    ],
)
def test_devices_must_exist_on_this_machine(workdir: Path, device: str, fragment: str) -> None:
    import torch

    if torch.cuda.is_available() and device.startswith("cuda"):
        pytest.skip("this machine has a GPU")
    path = write(workdir / "p.yaml", f"p:\n  agent_id: ppo\n  env_id: CartPole-v1\n  device: {device}\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:4: profile 'p': ") and fragment in problem


def test_auto_device_trains_on_what_there_is(workdir: Path) -> None:
    result = daedalus.train(agent_id="ppo", env_id="CartPole-v1", device="auto", config={"total_steps": 256, "num_steps": 64, "final_eval_episodes": 0}, runs_dir=workdir / "runs")
    assert result.status == "completed"


def test_sizes_that_cannot_fit_in_memory_are_refused_with_the_estimate(workdir: Path) -> None:
    path = write(workdir / "p.yaml", """
        huge:
          agent_id: dqn
          env_id: CartPole-v1
          config: {buffer_size: 100000000000, hidden_sizes: [256, 256]}
        wide:
          agent_id: ppo
          env_id: CartPole-v1
          config: {hidden_sizes: [1000000, 1000000]}
    """)
    huge, wide = problems_of(path)
    assert huge.startswith(f"{path}:4: profile 'huge': the sizes in this profile need about 4,842.9 GiB (replay buffer (buffer_size) 4,842.9 GiB")
    assert "more than this machine's" in huge and huge.endswith("Make the largest of them smaller.")
    assert "networks (hidden_sizes) 44,703." in wide


# --------------------------------------------------------------------------- spaces

SPACE_ENVS = '''
import gymnasium as gym
import numpy as np
from gymnasium import spaces


class DictCartPole(gym.ObservationWrapper):
    """CartPole observed as {"position": Box(2), "velocity": Box(2), "side": Discrete(2)}."""

    def __init__(self, env):
        super().__init__(env)
        low, high = env.observation_space.low, env.observation_space.high
        self.observation_space = spaces.Dict({
            "position": spaces.Box(low[[0, 2]], high[[0, 2]], dtype=np.float32),
            "velocity": spaces.Box(low[[1, 3]], high[[1, 3]], dtype=np.float32),
            "side": spaces.Discrete(2),
        })

    def observation(self, obs):
        return {"position": obs[[0, 2]], "velocity": obs[[1, 3]], "side": int(obs[0] > 0)}


def dict_cartpole(**kwargs):
    return DictCartPole(gym.make("CartPole-v1", **kwargs))


class TupleCartPole(gym.ObservationWrapper):
    def __init__(self, env):
        super().__init__(env)
        box = env.observation_space
        self.observation_space = spaces.Tuple((box, spaces.Discrete(3)))

    def observation(self, obs):
        return (obs, 1)


def tuple_cartpole(**kwargs):
    return TupleCartPole(gym.make("CartPole-v1", **kwargs))


class TextCartPole(gym.ObservationWrapper):
    def __init__(self, env):
        super().__init__(env)
        self.observation_space = spaces.Dict({"obs": env.observation_space, "note": spaces.Text(8)})

    def observation(self, obs):
        return {"obs": obs, "note": "hi"}


def text_cartpole(**kwargs):
    return TextCartPole(gym.make("CartPole-v1", **kwargs))
'''


@pytest.mark.parametrize("agent", ["ppo", "dqn"])
@pytest.mark.parametrize("env", ["dict_cartpole", "tuple_cartpole"])
def test_dict_and_tuple_observations_are_flattened(workdir: Path, agent: str, env: str) -> None:
    write(workdir / "envs.py", SPACE_ENVS)
    result = daedalus.train(
        agent_id=agent, env_id=f"envs.py:{env}", num_envs=2,
        config={"total_steps": 256, "final_eval_episodes": 2, "eval_every_steps": 128, "eval_episodes": 1,
                **({"num_steps": 64} if agent == "ppo" else {"learning_starts": 64, "buffer_size": 1000})},
        runs_dir=workdir / "runs",
    )
    assert result.status == "completed", result.error
    loaded = daedalus.load_run(result.path, trust_code=True)
    assert loaded.resolved.flatten_observations
    expected = 4 + 2 + 0 if env == "dict_cartpole" else 4 + 3  # Discrete(n) flattens to one-hot n
    assert loaded.resolved.observation_space.shape == (expected,)
    obs, _ = loaded.resolved.make_env(0).reset(seed=0)
    assert obs.shape == (expected,)


def test_observations_without_a_flat_form_are_refused_at_load(workdir: Path) -> None:
    write(workdir / "envs.py", SPACE_ENVS)
    path = write(workdir / "p.yaml", "p:\n  agent_id: ppo\n  env_id: envs.py:text_cartpole\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:3: profile 'p': agent 'ppo' takes flat vector observations, and Text observation spaces have no flat form")


def test_unsupported_action_spaces_are_refused_at_load_for_every_algorithm(workdir: Path) -> None:
    path = write(workdir / "p.yaml", """
        dqn_box: {agent_id: dqn, env_id: Pendulum-v1}
        sac_discrete: {agent_id: sac, env_id: CartPole-v1}
        td3_discrete: {agent_id: td3, env_id: CartPole-v1}
        ppo_multibinary: {agent_id: ppo, env_id: envs.py:multibinary}
    """)
    write(workdir / "envs.py", '''
        import gymnasium as gym
        from gymnasium import spaces

        class MultiBinaryEnv(gym.Env):
            observation_space = spaces.Box(-1, 1, (3,))
            action_space = spaces.MultiBinary(4)

        def multibinary():
            return MultiBinaryEnv()
    ''')
    problems = problems_of(path)
    assert [p.split(": profile ")[1].split(":")[0] for p in problems] == ["'dqn_box'", "'sac_discrete'", "'td3_discrete'", "'ppo_multibinary'"]
    assert "agent 'dqn' acts in Discrete action spaces, but 'Pendulum-v1' has Box" in problems[0]
    assert "agent 'ppo' acts in Discrete or MultiDiscrete or Box action spaces, but 'envs.py:multibinary' has MultiBinary(4)" in problems[3]
