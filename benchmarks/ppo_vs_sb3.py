"""PPO and A2C: Daedalus vs Stable-Baselines3 with identical hyperparameters, side by side.

Run from the repository root (needs the ``bench`` extra: stable-baselines3):

    .venv/bin/python benchmarks/ppo_vs_sb3.py                       # everything, seeds 0-2
    .venv/bin/python benchmarks/ppo_vs_sb3.py --envs cartpole --seeds 0   # quick check

Protocol (both libraries, same process, runs interleaved so machine noise hits both):

- hyperparameters: rl-zoo3's tuned PPO for CartPole-v1 and Pendulum-v1 (see ``SETTINGS``);
  Pendulum's gSDE (``use_sde``, ``sde_sample_freq``) is dropped on *both* sides (Daedalus has none);
- torch runs with ``--threads`` CPU threads (default 1) on both sides;
- every 2,000 steps (at the first rollout boundary past it) the current policy plays 20
  deterministic episodes; the clock is paused meanwhile, so "time to threshold" and steps/s are
  training clock only (475 for CartPole, -200 for Pendulum);
- after training, a 50-episode deterministic evaluation.

Then the time to 475 with ``examples/cartpole.yaml``'s own settings (median over seeds) and the
whole-process wall time of ``daedalus train examples/cartpole.yaml`` (start-up included).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from _harness import (
    EVAL_EPISODES,
    EVAL_EVERY,
    FINAL_EPISODES,
    Null,
    SB3Policy,
    env_factory,
    first_hit,
    fmt,
    median,
)

from daedalus.algos.a2c import A2CConfig, make_a2c_agent, train_a2c
from daedalus.algos.ppo import PPOConfig, make_ppo_agent, train_ppo
from daedalus.evaluation import evaluate
from daedalus.types import TrainContext

ROOT = Path(__file__).resolve().parents[1]

# rl-zoo3 hyperparams/ppo.yml. batch_size -> num_minibatches = n_envs * n_steps / batch_size.
SETTINGS: dict[str, dict[str, Any]] = {
    "cartpole": {
        "env_id": "CartPole-v1", "threshold": 475.0, "n_envs": 8, "total": 100_000,
        "sb3": dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                    learning_rate="lin_0.001", clip_range="lin_0.2"),
        "daedalus": dict(num_steps=32, num_minibatches=1, gae_lambda=0.8, gamma=0.98, update_epochs=20, ent_coef=0.0,
                         learning_rate=1e-3, anneal_lr=True, clip_coef=0.2, anneal_clip=True),
    },
    "pendulum": {
        "env_id": "Pendulum-v1", "threshold": -200.0, "n_envs": 4, "total": 100_000,
        "sb3": dict(n_steps=1024, batch_size=64, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0,
                    learning_rate=1e-3, clip_range=0.2),
        "daedalus": dict(num_steps=1024, num_minibatches=64, gae_lambda=0.95, gamma=0.9, update_epochs=10, ent_coef=0.0,
                         learning_rate=1e-3, anneal_lr=False, clip_coef=0.2, anneal_clip=False),
    },
    "a2c_cartpole": {
        "algo": "a2c", "env_id": "CartPole-v1", "threshold": 475.0, "n_envs": 8, "total": 200_000,
        # rl-zoo3 a2c.yml CartPole-v1: n_envs 8, ent_coef 0.0 (5e5 steps; 2e5 here), else SB3's A2C
        # defaults: n_steps 5, RMSprop lr 7e-4 alpha 0.99 eps 1e-5, gae_lambda 1.0, no adv. normalization.
        "sb3": dict(ent_coef=0.0),
        "daedalus": dict(num_steps=5, gae_lambda=1.0, gamma=0.99, ent_coef=0.0, learning_rate=7e-4, anneal_lr=False,
                         norm_adv=False, use_rms_prop=True, rms_prop_alpha=0.99, rms_prop_eps=1e-5),
    },
}
# SB3 defaults that Daedalus must match explicitly: (V - V_target)^2 value loss with vf_coef 0.5,
# no value clipping, per-minibatch advantage normalization, grad norm 0.5, Adam eps 1e-5,
# separate 64x64 tanh actor and critic with orthogonal init, log_std_init 0.
COMMON = dict(vf_coef=0.5, max_grad_norm=0.5, hidden_sizes=[64, 64], activation="tanh", shared_trunk=False)
PPO_COMMON = dict(clip_vloss=False, norm_adv=True)


def run_sb3(name: str, seed: int, total: int) -> dict[str, float]:
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    setting = SETTINGS[name]
    kwargs = dict(setting["sb3"])
    for key in ("learning_rate", "clip_range"):
        if isinstance(kwargs.get(key), str):  # rl-zoo3's lin_<x>: x * progress_remaining
            start = float(kwargs[key][4:])
            kwargs[key] = lambda progress, start=start: progress * start
    make_env = env_factory(setting["env_id"])

    class EvalClock(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.excluded = 0.0
            self.next_eval = EVAL_EVERY
            self.evaluations: list[dict[str, float]] = []

        def _on_training_start(self) -> None:
            self.start = time.perf_counter()

        def _on_rollout_start(self) -> None:  # right after an update, like Daedalus
            if self.num_timesteps >= self.next_eval:
                self.next_eval += EVAL_EVERY
                paused = time.perf_counter()
                train_seconds = paused - self.start - self.excluded
                result = evaluate(SB3Policy(self.model), make_env, EVAL_EPISODES, True, seed=seed + 10_000)
                self.evaluations.append({"step": self.num_timesteps, "mean_return": result.mean_return, "train_seconds": train_seconds})
                self.excluded += time.perf_counter() - paused

        def _on_step(self) -> bool:
            return True

    envs = make_vec_env(setting["env_id"], n_envs=setting["n_envs"], seed=seed)
    algo = A2C if setting.get("algo") == "a2c" else PPO
    model = algo("MlpPolicy", envs, seed=seed, device="cpu", verbose=0, **kwargs)
    clock = EvalClock()
    start = time.perf_counter()
    model.learn(total_timesteps=total, callback=clock)
    train_seconds = time.perf_counter() - start - clock.excluded
    final = evaluate(SB3Policy(model), make_env, FINAL_EPISODES, True, seed=seed + 20_000)
    return {"sps": model.num_timesteps / train_seconds, "time_to_threshold": first_hit(clock.evaluations, setting["threshold"]),
            "final": final.mean_return}


def run_daedalus(name: str, seed: int, total: int, config_values: dict[str, Any] | None = None,
                 num_envs: int | None = None) -> dict[str, Any]:
    setting = SETTINGS[name]
    make_env = env_factory(setting["env_id"])
    a2c = setting.get("algo") == "a2c"
    common = COMMON if a2c else {**COMMON, **PPO_COMMON}
    values = config_values or {**common, **setting["daedalus"], "eval_every_steps": EVAL_EVERY,
                               "eval_episodes": EVAL_EPISODES, "torch_threads": torch.get_num_threads()}
    config_class, make_agent, train = (A2CConfig, make_a2c_agent, train_a2c) if a2c else (PPOConfig, make_ppo_agent, train_ppo)
    config = config_class(**{**values, "total_steps": total, "checkpoint_every_steps": 0, "log_every_steps": 10**9,
                             "final_eval_episodes": 0})
    context = TrainContext(
        profile_id=name, agent_id="ppo", env_id=setting["env_id"], env_args={}, num_envs=num_envs or setting["n_envs"],
        seed=seed, vectorization="auto", device="cpu", config=None, make_env=make_env,  # type: ignore[arg-type]
        logger=Null(), progress=Null(), checkpoint=lambda *args: None,
    )
    probe = make_env()
    agent = make_agent(probe.observation_space, probe.action_space, config, seed=seed)
    artifacts: dict[str, Any] = {}
    train(make_env, agent, config, artifacts, None, context)
    split = artifacts["time_split"]
    final = evaluate(agent, make_env, FINAL_EPISODES, True, seed=seed + 20_000)
    return {"sps": split["steps"] / split["train_seconds"], "final": final.mean_return,
            "time_to_threshold": first_hit(artifacts["evaluations"], setting["threshold"]), "split": split}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", default="cartpole,pendulum,a2c_cartpole", help="comma-separated subset of: cartpole, pendulum, a2c_cartpole")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--total-steps", type=int, default=None, help="override the 100k steps (quick checks)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for both libraries")
    parser.add_argument("--profile-seeds", default="0,1,2,3,4", help="seeds for the examples/cartpole.yaml timing ('' skips)")
    parser.add_argument("--skip-cli", action="store_true", help="skip the `daedalus train` wall-time measurement")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",") if s]

    print(f"torch {torch.__version__}, {args.threads} thread(s); seeds {seeds}; eval {EVAL_EPISODES} det. episodes every {EVAL_EVERY} steps")
    for name in [n for n in args.envs.split(",") if n]:
        setting = SETTINGS[name]
        total = args.total_steps or setting["total"]
        rows: dict[str, list[dict[str, Any]]] = {"sb3": [], "daedalus": []}
        for seed in seeds:
            rows["sb3"].append(run_sb3(name, seed, total))
            rows["daedalus"].append(run_daedalus(name, seed, total))
            for lib in ("sb3", "daedalus"):
                r = rows[lib][-1]
                print(f"  {setting['env_id']} seed {seed} {lib:8s} {r['sps']:9,.0f} steps/s  "
                      f"time to {setting['threshold']:g}: {fmt(r['time_to_threshold'])} s  final {r['final']:.1f}", flush=True)
        summary = {lib: {key: median([r[key] for r in rs]) for key in ("sps", "time_to_threshold", "final")} for lib, rs in rows.items()}
        print(f"\n{setting['env_id']} ({total:,} steps, medians over seeds {seeds})")
        print(f"  {'':10s} {'steps/s':>10s} {'time to ' + format(setting['threshold'], 'g'):>14s} {'final (50 ep)':>14s}")
        for lib in ("sb3", "daedalus"):
            s = summary[lib]
            print(f"  {lib:10s} {s['sps']:10,.0f} {fmt(s['time_to_threshold']):>12s} s {s['final']:14.1f}")
        ratio_sps = summary["daedalus"]["sps"] / summary["sb3"]["sps"]
        times = (summary["daedalus"]["time_to_threshold"], summary["sb3"]["time_to_threshold"])
        ratio_time = f"x{times[0] / times[1]:.2f}" if max(times) < float("inf") else "n/a (not reached by both)"
        print(f"  daedalus/sb3: steps/s x{ratio_sps:.2f}, time to threshold {ratio_time}\n", flush=True)

    profile_seeds = [int(s) for s in args.profile_seeds.split(",") if s]
    if profile_seeds:
        profile = yaml.safe_load((ROOT / "examples" / "cartpole.yaml").read_text())["cartpole_ppo"]
        values = {**profile["config"], "eval_every_steps": EVAL_EVERY, "eval_episodes": EVAL_EPISODES}
        times = []
        for seed in profile_seeds:
            result = run_daedalus("cartpole", seed, args.total_steps or profile["config"]["total_steps"], values, profile["num_envs"])
            times.append(result["time_to_threshold"])
            print(f"  examples/cartpole.yaml seed {seed}: time to 475 {fmt(result['time_to_threshold'])} s, "
                  f"{result['sps']:,.0f} steps/s", flush=True)
        print(f"examples/cartpole.yaml: median time to 475 = {fmt(median(times))} s (training clock; seeds {profile_seeds})\n")

    if not args.skip_cli:
        cli = Path(sys.executable).with_name("daedalus")
        if not cli.exists():
            print("TODO: `daedalus` CLI not installed; whole-process wall time not measured.")
            return
        with tempfile.TemporaryDirectory() as runs_dir:
            start = time.perf_counter()
            done = subprocess.run([str(cli), "train", str(ROOT / "examples" / "cartpole.yaml"), "--runs-dir", runs_dir],
                                  capture_output=True, text=True)
            wall = time.perf_counter() - start
        status = "ok" if done.returncode == 0 else f"exit code {done.returncode}: {done.stderr.strip()[-500:]}"
        print(f"`daedalus train examples/cartpole.yaml` whole-process wall time: {wall:.2f} s ({status})")


if __name__ == "__main__":
    main()
