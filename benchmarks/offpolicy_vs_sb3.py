"""DQN, SAC, TD3: Daedalus vs Stable-Baselines3 with identical hyperparameters, side by side.

Run from the repository root (needs the ``bench`` extra: stable-baselines3):

    .venv/bin/python benchmarks/offpolicy_vs_sb3.py                         # everything, seeds 0-2
    .venv/bin/python benchmarks/offpolicy_vs_sb3.py --algos dqn --seeds 0   # quick check
    .venv/bin/python benchmarks/offpolicy_vs_sb3.py --algos sac --seeds 0 --total-steps 3000
    .venv/bin/python benchmarks/offpolicy_vs_sb3.py --algos dqn --profiles             # + examples/dqn_cartpole.yaml

Protocol (both libraries, same process, runs interleaved per seed so machine noise hits both):

- hyperparameters: rl-zoo3's tuned values (``hyperparams/dqn.yml`` CartPole-v1, ``sac.yml`` and
  ``td3.yml`` Pendulum-v1; see ``SETTINGS``), everything else at SB3's defaults, which Daedalus's
  configs are set to match explicitly (``COMMON``);
- torch runs with ``--threads`` CPU threads (default 1) on both sides; one env (zoo's n_envs);
- every 2,000 steps the current policy plays 20 deterministic episodes with the clock paused, so
  "time to threshold" (475 CartPole, -200 Pendulum) and steps/s are training clock only;
- no early stop: each run trains for the zoo's ``n_timesteps``, then a 50-episode deterministic
  evaluation; Daedalus's env / inference / learn split is printed per run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
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

from daedalus.evaluation import evaluate
from daedalus.types import TrainContext

# rl-zoo3 tuned hyperparameters, written once per library (same values, each library's names).
SETTINGS: dict[str, dict[str, Any]] = {
    "dqn": {
        "env_id": "CartPole-v1", "threshold": 475.0, "total": 50_000,
        "sb3": dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1_000, gamma=0.99,
                    target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                    exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256])),
        "daedalus": dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1_000, gamma=0.99,
                         target_update_interval_steps=10, train_frequency_steps=256, gradient_steps=128,
                         exploration_fraction=0.16, exploration_final_eps=0.04, hidden_sizes=[256, 256]),
    },
    "sac": {
        "env_id": "Pendulum-v1", "threshold": -200.0, "total": 20_000,
        "sb3": dict(learning_rate=1e-3),
        "daedalus": dict(learning_rate=1e-3),
    },
    "td3": {
        "env_id": "Pendulum-v1", "threshold": -200.0, "total": 20_000,
        "sb3": dict(gamma=0.98, buffer_size=200_000, learning_starts=10_000, gradient_steps=1, train_freq=1,
                    learning_rate=1e-3, policy_kwargs=dict(net_arch=[400, 300])),
        "daedalus": dict(gamma=0.98, buffer_size=200_000, learning_starts=10_000, gradient_steps=1,
                         train_frequency_steps=1, learning_rate=1e-3, hidden_sizes=[400, 300], exploration_noise=0.1),
    },
}
# SB3 defaults that Daedalus sets explicitly. DQN: tau 1 (hard copy), Huber loss, grad norm 10,
# Adam eps 1e-8, exploration from 1.0, no Double DQN. SAC: buffer 1e6, 100 random steps, batch 256,
# tau 0.005, gamma 0.99, ent_coef auto from 1.0, target entropy -dim(A), 256x256 ReLU nets.
# TD3: batch 256, tau 0.005, policy delay 2, target noise 0.2 clipped at 0.5. Both: 1-step returns.
COMMON: dict[str, dict[str, Any]] = {
    "dqn": dict(tau=1.0, max_grad_norm=10.0, adam_eps=1e-8, exploration_initial_eps=1.0, double_dqn=False, n_steps=1, activation="relu"),
    "sac": dict(buffer_size=1_000_000, learning_starts=100, batch_size=256, tau=0.005, gamma=0.99, autotune_entropy=True,
                initial_alpha=1.0, target_entropy=None, hidden_sizes=[256, 256], activation="relu", n_steps=1,
                train_frequency_steps=1, gradient_steps=1, target_update_interval=1),
    "td3": dict(batch_size=256, tau=0.005, policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5, activation="relu", n_steps=1),
}


def run_sb3(algo: str, seed: int, total: int) -> dict[str, Any]:
    import stable_baselines3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.noise import NormalActionNoise

    setting = SETTINGS[algo]
    kwargs = dict(setting["sb3"])
    make_env = env_factory(setting["env_id"])
    env = make_env()
    if algo == "td3":
        dims = env.action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(dims), 0.1 * np.ones(dims))

    class EvalClock(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.excluded = 0.0
            self.next_eval = EVAL_EVERY
            self.evaluations: list[dict[str, float]] = []

        def _on_training_start(self) -> None:
            self.start = time.perf_counter()

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                self.next_eval += EVAL_EVERY
                paused = time.perf_counter()
                train_seconds = paused - self.start - self.excluded
                result = evaluate(SB3Policy(self.model), make_env, EVAL_EPISODES, True, seed=seed + 10_000)
                self.evaluations.append({"step": self.num_timesteps, "mean_return": result.mean_return, "train_seconds": train_seconds})
                self.excluded += time.perf_counter() - paused
            return True

    model = getattr(stable_baselines3, algo.upper())("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **kwargs)
    clock = EvalClock()
    start = time.perf_counter()
    model.learn(total_timesteps=total, callback=clock)
    train_seconds = time.perf_counter() - start - clock.excluded
    final = evaluate(SB3Policy(model), make_env, FINAL_EPISODES, True, seed=seed + 20_000)
    return {"sps": model.num_timesteps / train_seconds, "time_to_threshold": first_hit(clock.evaluations, setting["threshold"]),
            "steps_to_threshold": first_hit(clock.evaluations, setting["threshold"], "step"),
            "final": final.mean_return, "train_seconds": train_seconds}


def run_daedalus(algo: str, seed: int, total: int, profile_values: dict[str, Any] | None = None) -> dict[str, Any]:
    """One Daedalus run with the zoo settings, or with ``profile_values`` (an example profile's config)."""
    import importlib

    setting = SETTINGS[algo]
    module = importlib.import_module(f"daedalus.algos.{algo}")
    config_class = {"dqn": "DQNConfig", "sac": "SACConfig", "td3": "TD3Config"}[algo]
    make_env = env_factory(setting["env_id"])
    values = {**COMMON[algo], **setting["daedalus"], "total_steps": total, "eval_every_steps": EVAL_EVERY, "eval_episodes": EVAL_EPISODES,
              "checkpoint_every_steps": 0, "log_every_steps": 10**9, "torch_threads": torch.get_num_threads(), "target_return": None}
    if profile_values is not None:
        values = {**profile_values, "total_steps": total, "checkpoint_every_steps": 0, "log_every_steps": 10**9}
    config = getattr(module, config_class)(**values)
    context = TrainContext(
        profile_id=algo, agent_id=algo, env_id=setting["env_id"], env_args={}, num_envs=1, seed=seed,
        # One env in-process, like SB3's DummyVecEnv (Gymnasium's native CartPole vector env costs more per step for one copy).
        vectorization="sync", device="cpu", config=None, make_env=make_env,  # type: ignore[arg-type]
        logger=Null(), progress=Null(), checkpoint=lambda *args: None,
    )
    probe = make_env()
    agent = getattr(module, f"make_{algo}_agent")(probe.observation_space, probe.action_space, config, seed=seed)
    artifacts: dict[str, Any] = {}
    getattr(module, f"train_{algo}")(make_env, agent, config, artifacts, None, context)
    split = artifacts["time_split"]
    final = evaluate(agent, make_env, FINAL_EPISODES, True, seed=seed + 20_000)
    return {"sps": split["steps"] / split["train_seconds"], "final": final.mean_return, "train_seconds": split["train_seconds"],
            "time_to_threshold": first_hit(artifacts["evaluations"], setting["threshold"]),
            "steps_to_threshold": first_hit(artifacts["evaluations"], setting["threshold"], "step"), "split": split}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", default="dqn,sac,td3", help="comma-separated subset of: dqn, sac, td3")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--total-steps", type=int, default=None, help="override the zoo's n_timesteps (quick checks)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for both libraries")
    parser.add_argument("--matmul-precision", default="highest", choices=["highest", "high", "medium"],
                        help="torch.set_float32_matmul_precision for both libraries ('medium': bfloat16 matmuls on AMX / AVX512-BF16 CPUs)")
    parser.add_argument("--skip-sb3", action="store_true", help="Daedalus only (development)")
    parser.add_argument("--profiles", action="store_true", help="also time each algorithm's example profile (examples/*.yaml) to its threshold")
    parser.add_argument("--only-profiles", action="store_true", help="time the example profiles only (no comparison runs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision(args.matmul_precision)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    libs = ["daedalus"] if args.skip_sb3 else ["sb3", "daedalus"]

    print(f"torch {torch.__version__}, {args.threads} thread(s), matmul precision {args.matmul_precision}; seeds {seeds}; eval {EVAL_EPISODES} det. episodes every {EVAL_EVERY} steps")
    table = []
    for algo in [a for a in args.algos.split(",") if a and not args.only_profiles]:
        setting = SETTINGS[algo]
        total = args.total_steps or setting["total"]
        rows: dict[str, list[dict[str, Any]]] = {lib: [] for lib in libs}
        for seed in seeds:
            for lib in libs:
                torch.set_num_threads(args.threads)
                rows[lib].append(run_sb3(algo, seed, total) if lib == "sb3" else run_daedalus(algo, seed, total))
                r = rows[lib][-1]
                line = (f"  {algo} {setting['env_id']} seed {seed} {lib:8s} {r['sps']:8,.0f} steps/s  "
                        f"time to {setting['threshold']:g}: {fmt(r['time_to_threshold'])} s ({fmt(r['steps_to_threshold'], 0)} steps)  final {r['final']:.1f}")
                if "split" in r:
                    s = r["split"]
                    line += f"  [env {s['env']:.1f} s, inference {s['inference']:.1f} s, learn {s['learn']:.1f} s, other {s['other']:.1f} s]"
                print(line, flush=True)
        summary = {lib: {key: median([r[key] for r in rs]) for key in ("sps", "time_to_threshold", "steps_to_threshold", "final")} for lib, rs in rows.items()}
        print(f"\n{algo.upper()} {setting['env_id']} ({total:,} steps, medians over seeds {seeds})")
        print(f"  {'':10s} {'steps/s':>10s} {'time to ' + format(setting['threshold'], 'g'):>14s} {'steps to it':>12s} {'final (50 ep)':>14s}")
        for lib in libs:
            s = summary[lib]
            print(f"  {lib:10s} {s['sps']:10,.0f} {fmt(s['time_to_threshold']):>12s} s {fmt(s['steps_to_threshold'], 0):>12s} {s['final']:14.1f}")
        if len(libs) == 2:
            ratio_sps = summary["daedalus"]["sps"] / summary["sb3"]["sps"]
            times = (summary["sb3"]["time_to_threshold"], summary["daedalus"]["time_to_threshold"])
            ratio_time = f"x{times[0] / times[1]:.2f} faster" if max(times) < float("inf") else "n/a (not reached by both)"
            print(f"  daedalus vs sb3: steps/s x{ratio_sps:.2f}, time to threshold {ratio_time}\n", flush=True)
            table.append((algo, setting, summary, ratio_sps, ratio_time))
    if args.profiles or args.only_profiles:
        import yaml

        files = {"dqn": ("dqn_cartpole.yaml", "cartpole_dqn"), "sac": ("sac_pendulum.yaml", "pendulum_sac"), "td3": ("td3_pendulum.yaml", "pendulum_td3")}
        for algo in [a for a in args.algos.split(",") if a]:
            file, profile_id = files[algo]
            profile = yaml.safe_load((Path(__file__).resolve().parents[1] / "examples" / file).read_text())[profile_id]
            times = []
            for seed in seeds:
                torch.set_num_threads(args.threads)
                result = run_daedalus(algo, seed, args.total_steps or profile["config"]["total_steps"], profile["config"])
                times.append(result["time_to_threshold"])
                print(f"  examples/{file} seed {seed}: time to {SETTINGS[algo]['threshold']:g} {fmt(result['time_to_threshold'])} s "
                      f"({fmt(result['steps_to_threshold'], 0)} steps), {result['sps']:,.0f} steps/s", flush=True)
            print(f"examples/{file}: median time to {SETTINGS[algo]['threshold']:g} = {fmt(median(times))} s (training clock; its own "
                  f"evaluation every {profile['config']['eval_every_steps']} steps, stops there)\n", flush=True)
    if table:
        print("| Algo / env | Library | steps/s | time to threshold (s) | steps to threshold | final 50-ep mean |")
        print("|---|---|---:|---:|---:|---:|")
        for algo, setting, summary, ratio_sps, ratio_time in table:
            for lib in libs:
                s = summary[lib]
                print(f"| {algo.upper()} {setting['env_id']} ({setting['threshold']:g}) | {lib} | {s['sps']:,.0f} | {fmt(s['time_to_threshold'])} | {fmt(s['steps_to_threshold'], 0)} | {s['final']:.1f} |")
            print(f"| | **Daedalus / SB3** | **x{ratio_sps:.2f}** | **{ratio_time}** | | |")


if __name__ == "__main__":
    main()
