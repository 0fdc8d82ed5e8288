"""Stable-Baselines3 algorithms as agents (``sb3:PPO``, ``sb3:SAC``) and ``daedalus import-sb3``.

The central claim is exactness: a profile naming ``sb3:ALGO`` trains exactly what SB3 trains
when called directly with the same env construction (``make_vec_env``) and seed: the saved
weights are bit-identical to the directly trained model's, and ``daedalus evaluate`` of the run
gives the same returns as SB3's ``model.predict`` played on the same seeded episodes. Security:
an SB3 zip is imported without unpickling anything (a booby-trapped pickle in ``data`` stays
inert; a ``policy.pth`` that is a pickle of an arbitrary object is refused).
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

import gymnasium as gym  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from stable_baselines3 import PPO, SAC  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402

import daedalus  # noqa: E402
from daedalus.errors import DaedalusError, MissingDependencyError, ProfileError, RegistryError  # noqa: E402
from tests.conftest import write  # noqa: E402

PPO_CONFIG = {
    "n_steps": 64, "batch_size": 32, "n_epochs": 2, "learning_rate": 1.0e-3,
    "policy_kwargs": {"net_arch": [32, 32], "activation_fn": "relu"},
}
PPO_PROFILE = """
cartpole_sb3_ppo:
  agent_id: sb3:PPO
  env_id: CartPole-v1
  num_envs: 2
  seed: 7
  config:
    total_steps: 512
    n_steps: 64
    batch_size: 32
    n_epochs: 2
    learning_rate: 1.0e-3
    policy_kwargs: {net_arch: [32, 32], activation_fn: relu}
    eval_every_steps: 256
    eval_episodes: 2
    checkpoint_every_steps: 256
    log_every_steps: 128
    final_eval_episodes: 2
"""
SAC_PROFILE = """
pendulum_sb3_sac:
  agent_id: sb3:SAC
  env_id: Pendulum-v1
  num_envs: 1
  seed: 3
  config:
    total_steps: 300
    learning_starts: 100
    batch_size: 64
    buffer_size: 1000
    policy_kwargs: {net_arch: [32, 32]}
    eval_every_steps: 0
    checkpoint_every_steps: 0
    log_every_steps: 100
    final_eval_episodes: 0
"""


@pytest.fixture(autouse=True)
def one_torch_thread() -> Any:
    """SB3 called directly runs with the thread count the runs use (``torch_threads: 1``, the default)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def daedalus_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m daedalus ARGS`` in ``cwd``."""
    env = {**os.environ, "DAEDALUS_PROGRESS": "plain", "DAEDALUS_PLOTS": "0"}
    return subprocess.run([sys.executable, "-m", "daedalus", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def import_sb3_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``daedalus import-sb3 ARGS`` in ``cwd``."""
    return daedalus_cli("import-sb3", *args, cwd=cwd)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def only_run(runs: Path) -> Path:
    (run,) = [p.parent for p in runs.glob("*/run.json")]
    return run


def sb3_returns(model: Any, env_id: str, episodes: int, seed: int = 0) -> list[float]:
    """SB3 called directly: ``model.predict(deterministic=True)`` on episode ``i`` reset with ``seed + i``.

    The episodes run in lockstep, one ``predict`` on the stacked observations of those still
    running (as ``evaluate_policy`` does with a vector env, and as ``daedalus evaluate`` does):
    a batch of 2 rounds differently from a batch of 1 in the last bits, which continuous
    actions (Pendulum) carry into the returns.
    """
    envs = [gym.make(env_id) for _ in range(episodes)]
    observations = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    returns = [0.0] * episodes
    running = list(range(episodes))
    while running:
        actions, _ = model.predict(np.stack([observations[i] for i in running]), deterministic=True)
        still = []
        for row, i in enumerate(running):
            observations[i], reward, terminated, truncated, _ = envs[i].step(actions[row])
            returns[i] += float(reward)
            if not (terminated or truncated):
                still.append(i)
        running = still
    for env in envs:
        env.close()
    return returns


def assert_same_weights(run: Path, model: Any) -> None:
    saved = load_file(str(run / "checkpoints" / "final" / "weights.safetensors"))
    direct = model.policy.state_dict()
    policy = {k.removeprefix("policy/"): v for k, v in saved.items() if k.startswith("policy/")}
    assert set(policy) == set(direct)
    different = [k for k in direct if not torch.equal(policy[k], direct[k])]
    assert different == [], f"weights differ from SB3 called directly: {different}"


def evaluate_cli(run: Path, cwd: Path, episodes: int) -> list[float]:
    ok(daedalus_cli("evaluate", str(run), "--episodes", str(episodes), cwd=cwd))
    return [float(r) for r in json.loads((run / "eval.json").read_text())["latest"]["returns"]]


# --------------------------------------------------------------------------- training equals SB3 directly


def test_sb3_ppo_through_the_cli_equals_sb3_called_directly(tmp_path: Path) -> None:
    write(tmp_path / "sb3.yaml", PPO_PROFILE)
    ok(daedalus_cli("train", "sb3.yaml", "--runs-dir", "runs", cwd=tmp_path))
    run = only_run(tmp_path / "runs")
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "completed" and meta["steps"] == 512

    direct = PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=7), seed=7, **{
        **PPO_CONFIG, "policy_kwargs": {"net_arch": [32, 32], "activation_fn": torch.nn.ReLU},
    })
    direct.learn(total_timesteps=512)
    assert_same_weights(run, direct)
    assert evaluate_cli(run, tmp_path, 3) == sb3_returns(direct, "CartPole-v1", 3)

    # The run logs SB3's own metric names next to Daedalus's, evaluates and checkpoints on the schedule.
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    for name in ("train/loss", "train/value_loss", "rollout/ep_rew_mean", "charts/episode_return", "charts/steps_per_second", "time/env", "time/learn"):
        assert name in header
    artifacts = json.loads((run / "artifacts.json").read_text())
    assert [e["step"] for e in artifacts["evaluations"]] == [256, 512]
    assert {"final", "best", "step-256", "step-512"} <= {p.name for p in (run / "checkpoints").iterdir()}
    state = json.loads((run / "checkpoints" / "final" / "state.json").read_text())
    assert state["agent_id"] == "sb3:PPO" and state["action_space"] == {"type": "Discrete", "n": 2, "start": 0}
    assert state["config"]["policy_kwargs"] == {"net_arch": [32, 32], "activation_fn": "relu"}


def test_sb3_sac_through_the_cli_equals_sb3_called_directly(tmp_path: Path) -> None:
    write(tmp_path / "sac.yaml", SAC_PROFILE)
    ok(daedalus_cli("train", "sac.yaml", "--runs-dir", "runs", cwd=tmp_path))
    run = only_run(tmp_path / "runs")
    direct = SAC("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=1, seed=3), seed=3, learning_starts=100, batch_size=64,
                 buffer_size=1000, policy_kwargs={"net_arch": [32, 32]})
    direct.learn(total_timesteps=300)
    assert_same_weights(run, direct)
    saved = load_file(str(run / "checkpoints" / "final" / "weights.safetensors"))
    assert torch.equal(saved["variables/log_ent_coef"], direct.log_ent_coef.detach())
    assert evaluate_cli(run, tmp_path, 2) == sb3_returns(direct, "Pendulum-v1", 2)
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "train/critic_loss" in header and "train/ent_coef" in header


NORMALIZED_PROFILE = """
pendulum_sb3_ppo_normalized:
  agent_id: sb3:PPO
  env_id: Pendulum-v1
  num_envs: 2
  seed: 5
  config:
    total_steps: 512
    n_steps: 128
    batch_size: 64
    n_epochs: 2
    gamma: 0.9
    normalize: {norm_obs: true, norm_reward: true, clip_obs: 5.0}
    policy_kwargs: {net_arch: [32, 32]}
    eval_every_steps: 256
    eval_episodes: 2
    checkpoint_every_steps: 0
    log_every_steps: 128
    final_eval_episodes: 0
"""


class _NormalizedPolicy:
    """SB3 called directly on normalized observations, as rl-zoo3's enjoy runs a VecNormalize model."""

    def __init__(self, model: Any, vec_normalize: Any) -> None:
        self.model, self.vec_normalize = model, vec_normalize

    def predict(self, obs: Any, deterministic: bool = True) -> Any:
        return self.model.predict(self.vec_normalize.normalize_obs(obs), deterministic=deterministic)


def test_sb3_normalize_equals_vecnormalize_called_directly(tmp_path: Path) -> None:
    from stable_baselines3.common.vec_env import VecNormalize

    write(tmp_path / "norm.yaml", NORMALIZED_PROFILE)
    ok(daedalus_cli("train", "norm.yaml", "--runs-dir", "runs", cwd=tmp_path))
    run = only_run(tmp_path / "runs")
    # rl-zoo3's construction: VecNormalize(make_vec_env(...)), gamma from the algorithm's
    vec_normalize = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=5), norm_obs=True, norm_reward=True, clip_obs=5.0, gamma=0.9)
    direct = PPO("MlpPolicy", vec_normalize, seed=5, n_steps=128, batch_size=64, n_epochs=2, gamma=0.9, policy_kwargs={"net_arch": [32, 32]})
    direct.learn(total_timesteps=512)
    assert_same_weights(run, direct)
    saved = load_file(str(run / "checkpoints" / "final" / "weights.safetensors"))
    assert np.array_equal(saved["vecnormalize/obs_mean"].numpy(), vec_normalize.obs_rms.mean)
    assert np.array_equal(saved["vecnormalize/obs_var"].numpy(), vec_normalize.obs_rms.var)
    assert np.array_equal(saved["vecnormalize/ret_var"].numpy(), vec_normalize.ret_rms.var)
    state = json.loads((run / "checkpoints" / "final" / "state.json").read_text())
    assert state["vecnormalize"]["obs_count"] == vec_normalize.obs_rms.count
    assert state["vecnormalize"]["kwargs"] == {"norm_obs": True, "norm_reward": True, "clip_obs": 5.0, "gamma": 0.9}
    # the reloaded run acts on normalized observations, as the model with its VecNormalize does
    vec_normalize.training = False
    assert evaluate_cli(run, tmp_path, 2) == sb3_returns(_NormalizedPolicy(direct, vec_normalize), "Pendulum-v1", 2)


def test_sb3_normalize_is_checked_and_must_match_the_checkpoint() -> None:
    with pytest.raises(ProfileError, match="unknown key normalize.norm_ob .*did you mean 'norm_obs'"):
        _validate({"normalize": {"norm_ob": True}})
    with pytest.raises(ProfileError, match="normalize.clip_obs must be a number"):
        _validate({"normalize": {"clip_obs": "10"}})
    with pytest.raises(ProfileError, match="normalize is true, false or a mapping"):
        _validate({"normalize": "yes"})
    plain, normalized = _validate({}), _validate({"normalize": True})
    from daedalus.api.resolve import make_agent

    with_stats, without = make_agent(normalized), make_agent(plain)
    assert with_stats.normalize == {"gamma": 0.99}
    with pytest.raises(ValueError, match="saved with VecNormalize statistics, and the profile's config.normalize is off"):
        without.load_state(with_stats.state_tensors(), with_stats.state_json())
    with pytest.raises(ValueError, match="saved without VecNormalize statistics, and the profile's config.normalize is on"):
        with_stats.load_state(without.state_tensors(), without.state_json())


def test_sb3_async_vectorization_is_subprocvecenv_and_other_backends_are_refused(workdir: Path) -> None:
    from stable_baselines3.common.vec_env import SubprocVecEnv

    import daedalus

    config = {**PPO_CONFIG, "total_steps": 256, "eval_every_steps": 0, "checkpoint_every_steps": 0, "final_eval_episodes": 0}
    run = daedalus.train(agent_id="sb3:PPO", env_id="CartPole-v1", num_envs=2, seed=7, rollout={"vectorization": "async"}, config=config, runs_dir=workdir / "runs")
    assert run.status == "completed", run.error
    direct = PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=7, vec_env_cls=SubprocVecEnv), seed=7, **{
        **PPO_CONFIG, "policy_kwargs": {"net_arch": [32, 32], "activation_fn": torch.nn.ReLU},
    })
    direct.learn(total_timesteps=256)
    direct.get_env().close()
    assert_same_weights(Path(run.path), direct)
    with pytest.raises(ProfileError, match=r"rollout.backend: subprocess does not apply. Remove rollout.backend; rollout.vectorization: async"):
        from daedalus.api.resolve import validate
        from daedalus.config import profile_from_dict

        validate(profile_from_dict("p", {"agent_id": "sb3:PPO", "env_id": "CartPole-v1", "rollout": {"backend": "subprocess"}}))


def test_a_hook_stops_sb3_learning(workdir: Path) -> None:
    class StopAtFirstEval:
        def on_eval(self, info: Any) -> str:
            return f"stopped at {info.step}"

    result = daedalus.train(
        agent_id="sb3:A2C", env_id="CartPole-v1", num_envs=2, seed=0, runs_dir=workdir / "runs", callbacks=[StopAtFirstEval()],
        config={"total_steps": 100_000, "n_steps": 8, "eval_every_steps": 64, "eval_episodes": 1, "final_eval_episodes": 0},
    )
    assert result.status == "completed" and result.steps == 64
    assert result.artifacts["stop_reason"] == "stopped at 64"


def test_ctrl_c_stops_sb3_learning_and_the_run_resumes(workdir: Path) -> None:
    import signal

    from daedalus.api.resume import resume

    class CtrlCAfterFirstRollout:
        def on_rollout_end(self, info: Any) -> None:
            if info.step == 64:
                os.kill(os.getpid(), signal.SIGINT)  # what the session's handler receives on Ctrl-C

    config = {"total_steps": 256, "n_steps": 32, "batch_size": 32, "n_epochs": 1, "eval_every_steps": 0, "final_eval_episodes": 0}
    result = daedalus.train(agent_id="sb3:PPO", env_id="CartPole-v1", num_envs=2, seed=0, runs_dir=workdir / "runs",
                            callbacks=[CtrlCAfterFirstRollout()], config=config)
    # learn() stopped at the next step (the callback returned False); saved as final.
    assert result.status == "interrupted" and 64 <= result.steps < 256
    assert json.loads((result.path / "checkpoints" / "final" / "meta.json").read_text())["step"] == result.steps
    # Not bit-exact (no optimizer state or buffer is saved), but it continues: whole rollouts of 64
    # steps from where it stopped, up to total_steps, as SB3's learn(reset_num_timesteps=False) does.
    again = resume(result.path)
    assert again.status == "completed" and 256 <= again.steps < 256 + 64


# --------------------------------------------------------------------------- config validation


def _validate(config: dict[str, Any], agent_id: str = "sb3:PPO") -> Any:
    from daedalus.api.resolve import validate
    from daedalus.config import profile_from_dict

    return validate(profile_from_dict("p", {"agent_id": agent_id, "env_id": "CartPole-v1", "config": config}))


def test_config_errors_name_the_key_and_the_fix() -> None:
    with pytest.raises(ProfileError) as error:
        _validate({"n_step": 64, "n_epoch": 3})
    message = str(error.value)
    assert "unknown config key 'n_step' for agent 'sb3:PPO'" in message and "Did you mean 'n_steps'?" in message
    assert "Did you mean 'n_epochs'?" in message  # every unknown key at once
    with pytest.raises(ProfileError) as error:
        _validate({"policy_kwargs": {"activation_fn": "relux"}})
    assert "activation_fn 'relux' is not one of relu, tanh" in str(error.value) and "did you mean 'relu'?" in str(error.value)
    with pytest.raises(ProfileError, match="config key 'n_steps' must be int"):
        _validate({"n_steps": "many"})
    with pytest.raises(ProfileError, match="unknown key policy_kwargs.net_arc .*did you mean 'net_arch'"):
        _validate({"policy_kwargs": {"net_arc": [8]}})
    with pytest.raises(ProfileError, match="features_extractor_class.*names a class"):
        _validate({"policy_kwargs": {"features_extractor_class": "my.mod:Extractor"}})
    with pytest.raises(ProfileError, match="'seed' is set by Daedalus from the profile's own 'seed'"):
        _validate({"seed": 3})
    with pytest.raises(ProfileError, match="'lin_<value>'"):
        _validate({"learning_rate": "linear"})
    with pytest.raises(ProfileError, match="acts in Box action spaces"):
        _validate({}, agent_id="sb3:SAC")
    resolved = _validate({"learning_rate": "lin_0.001", "policy_kwargs": {"activation_fn": "tanh", "optimizer_class": "rmsprop"}})
    assert resolved.config.learning_rate == "lin_0.001"


def test_unknown_algorithm_lists_the_available_ones() -> None:
    from daedalus.registry import get_agent

    with pytest.raises(RegistryError) as error:
        get_agent("sb3:PP0")
    assert "Did you mean 'sb3:PPO'?" in str(error.value)
    assert "sb3:A2C, sb3:DDPG, sb3:DQN, sb3:PPO, sb3:SAC, sb3:TD3" in str(error.value)
    assert get_agent("sb3_contrib:TQC").config_class is not None


def test_missing_sb3_is_one_line_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from daedalus.agents.sb3 import sb3_agent_spec
    from daedalus.registry import get_agent

    sb3_agent_spec.cache_clear()
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    try:
        with pytest.raises(MissingDependencyError) as error:
            get_agent("sb3:PPO")
    finally:
        sb3_agent_spec.cache_clear()
    assert "pip install 'daedalus[sb3]'" in str(error.value) and "\n" not in str(error.value)


# --------------------------------------------------------------------------- import-sb3


def _saved_ppo(path: Path) -> Any:
    model = PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=1, seed=1), seed=1, n_steps=128, batch_size=64, n_epochs=2,
                policy_kwargs={"net_arch": [16], "activation_fn": torch.nn.ReLU})
    model.learn(total_timesteps=256)
    model.save(path)
    return model


def test_import_sb3_of_a_saved_model_evaluates_like_the_model(tmp_path: Path) -> None:
    model = _saved_ppo(tmp_path / "ppo-cartpole.zip")
    out = ok(import_sb3_cli("ppo-cartpole.zip", "--env", "CartPole-v1", "--runs-dir", "runs", cwd=tmp_path)).stdout
    assert "as sb3:PPO (MlpPolicy, 256 steps)" in out
    run = only_run(tmp_path / "runs")
    assert json.loads((run / "run.json").read_text())["status"] == "imported"
    assert evaluate_cli(run, tmp_path, 3) == sb3_returns(model, "CartPole-v1", 3)


def test_import_sb3_of_sac_keeps_its_variables(workdir: Path) -> None:
    from daedalus.api.runs import evaluate_run
    from daedalus.api.sb3_import import import_sb3

    model = SAC("MlpPolicy", "Pendulum-v1", seed=2, learning_starts=50, batch_size=32, buffer_size=500,
                policy_kwargs={"net_arch": [16], "activation_fn": torch.nn.Tanh})
    model.learn(total_timesteps=120)
    model.save(workdir / "sac.zip")
    result = import_sb3(workdir / "sac.zip", "Pendulum-v1", output=workdir / "runs" / "sac-imported")
    assert result.agent_id == "sb3:SAC" and result.path == workdir / "runs" / "sac-imported"
    assert result.config["policy_kwargs"] == {"net_arch": [16], "activation_fn": "tanh", "use_sde": False}
    evaluation, _ = evaluate_run(result.path, episodes=2)
    assert evaluation.returns == sb3_returns(model, "Pendulum-v1", 2)
    with pytest.raises(DaedalusError, match="observation_space"):
        import_sb3(workdir / "sac.zip", "MountainCarContinuous-v0", algo="SAC")


class _CreatesFile:
    """Unpickling this opens ``path`` for writing: the file appears if anyone unpickles it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))


def _rewrite(source: Path, target: Path, replace: dict[str, bytes]) -> None:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            new.writestr(name, replace.get(name, old.read(name)))
        for name, content in replace.items():
            if name not in old.namelist():
                new.writestr(name, content)


def test_import_never_unpickles_the_zip(tmp_path: Path) -> None:
    from daedalus.api.sb3_import import UnsafeModelError, import_sb3

    model = _saved_ppo(tmp_path / "clean.zip")
    # The payload is live: whoever unpickles it creates the file.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_CreatesFile(probe)))
    assert probe.exists()

    marker = tmp_path / "pwned"
    payload = base64.b64encode(pickle.dumps(_CreatesFile(marker))).decode()
    with zipfile.ZipFile(tmp_path / "clean.zip") as archive:
        data = json.loads(archive.read("data"))
    # Every cloudpickled field carries the payload now, and a new one is added.
    for value in data.values():
        if isinstance(value, dict) and ":serialized:" in value:
            value[":serialized:"] = payload
    data["extra"] = {":type:": "<class 'builtins.object'>", ":serialized:": payload}
    _rewrite(tmp_path / "clean.zip", tmp_path / "trapped.zip", {"data": json.dumps(data).encode()})
    result = import_sb3(tmp_path / "trapped.zip", "CartPole-v1", runs_dir=tmp_path / "runs")
    assert not marker.exists()
    evaluation, _ = daedalus.api.evaluate_run(result.path, episodes=2)
    assert evaluation.returns == sb3_returns(model, "CartPole-v1", 2)

    # A policy.pth (or pytorch_variables.pth) that is a pickle of an arbitrary object is refused.
    for member in ("policy.pth", "pytorch_variables.pth"):
        evil = tmp_path / f"evil-{member}.zip"
        blob = tmp_path / "blob.pth"
        torch.save({"weight": _CreatesFile(marker)}, blob)
        _rewrite(tmp_path / "clean.zip", evil, {member: blob.read_bytes()})
        with pytest.raises(UnsafeModelError, match=f"{member} is not plain tensors.*weights_only"):
            import_sb3(evil, "CartPole-v1", runs_dir=tmp_path / "runs")
        assert not marker.exists()
    # Through the CLI: one line, exit status 2, nothing executed.
    result_cli = import_sb3_cli(str(tmp_path / "evil-policy.pth.zip"), "--env", "CartPole-v1", cwd=tmp_path)
    assert result_cli.returncode == 2 and "policy.pth is not plain tensors" in result_cli.stderr
    assert not marker.exists()

    _rewrite(tmp_path / "clean.zip", tmp_path / "extra.zip", {"payload.pkl": pickle.dumps(_CreatesFile(marker))})
    with pytest.raises(UnsafeModelError, match="unexpected members 'payload.pkl'"):
        import_sb3(tmp_path / "extra.zip", "CartPole-v1", runs_dir=tmp_path / "runs")
    with zipfile.ZipFile(tmp_path / "clean.zip") as old, zipfile.ZipFile(tmp_path / "nopolicy.zip", "w") as new:
        for name in old.namelist():
            if name != "policy.pth":
                new.writestr(name, old.read(name))
    with pytest.raises(UnsafeModelError, match="no policy.pth"):
        import_sb3(tmp_path / "nopolicy.zip", "CartPole-v1", runs_dir=tmp_path / "runs")
    assert not marker.exists()


def test_import_refuses_a_class_it_would_have_to_unpickle(tmp_path: Path) -> None:
    from daedalus.api.sb3_import import UnsafeModelError, import_sb3

    _saved_ppo(tmp_path / "clean.zip")
    with zipfile.ZipFile(tmp_path / "clean.zip") as archive:
        data = json.loads(archive.read("data"))
    data["policy_kwargs"]["features_extractor_class"] = "<class 'my_project.nets.Extractor'>"
    _rewrite(tmp_path / "clean.zip", tmp_path / "custom.zip", {"data": json.dumps(data).encode()})
    with pytest.raises(UnsafeModelError, match="features_extractor_class is <class 'my_project.nets.Extractor'>, stored only as a pickle"):
        import_sb3(tmp_path / "custom.zip", "CartPole-v1", runs_dir=tmp_path / "runs")


def test_spaces_round_trip_as_json() -> None:
    from gymnasium import spaces

    from daedalus.agents.sb3 import space_from_json, space_to_json

    for space in (
        spaces.Box(low=np.array([-1.0, -np.inf], dtype=np.float32), high=np.array([1.0, np.inf], dtype=np.float32), dtype=np.float32),
        spaces.Box(0, 255, shape=(4, 4, 3), dtype=np.uint8),
        spaces.Discrete(3, start=1),
        spaces.MultiDiscrete([3, 2]),
        spaces.MultiBinary(4),
        spaces.Dict({"a": spaces.Discrete(2), "b": spaces.Box(-1, 1, shape=(2,))}),
    ):
        described = space_to_json(space)
        assert json.loads(json.dumps(described, allow_nan=False)) == described
        assert space_from_json(described) == space
    with pytest.raises(ValueError, match="dtype"):
        space_from_json({"type": "Box", "shape": [1], "dtype": "object", "low": 0, "high": 1})
