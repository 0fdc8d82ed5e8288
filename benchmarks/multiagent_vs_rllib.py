"""Multi-agent PPO: Daedalus vs RLlib on mpe2's simple_spread (3 agents, one shared policy), side by side.

RLlib lives in its own virtualenv (it pins its own numpy, gymnasium, pandas, pyarrow, ...):

    python3 -m venv benchmarks/.venv-rllib
    benchmarks/.venv-rllib/bin/pip install -c constraints.txt torch==2.13.0     # the CPU wheel, first
    benchmarks/.venv-rllib/bin/pip install -c constraints.txt "ray[rllib]" pettingzoo mpe2

Then, from the repository root, with Daedalus's own environment (``daedalus[ma]``):

    .venv/bin/python benchmarks/multiagent_vs_rllib.py                    # 100k env steps, seed 0
    .venv/bin/python benchmarks/multiagent_vs_rllib.py --steps 20000      # quick check

This process runs Daedalus and the random-policy measurement itself and starts RLlib's runs as
``benchmarks/.venv-rllib/bin/python benchmarks/multiagent_vs_rllib.py --worker rllib ...``
(``--rllib-python`` to point elsewhere). Per seed the three measurements run one after another
(random policy, RLlib, Daedalus), so a change in machine load hits all of them.

Protocol:

- env: ``mpe2.simple_spread_v3.parallel_env(N=3, max_cycles=25, continuous_actions=False)``; every
  agent maps to one shared policy (parameter sharing);
- hyperparameters: ``examples/multiagent/simple_spread.yaml`` on both sides: 8 env copies x 100 steps
  = 800 env steps (2,400 agent steps) per update, 4 minibatches (600 agent steps), 10 epochs, lr 1e-3
  annealed linearly to 0 over the budget, gamma 0.95, GAE lambda 0.95, entropy 0.01, clip 0.2, value
  loss coefficient 0.5 without value clipping, gradient norm 0.5, separate 64x64 tanh actor and
  critic, no KL penalty, 1 torch thread per process;
- Daedalus: ``daedalus.train(examples/multiagent/simple_spread.yaml)`` with ``rollout.vectorization:
  async`` (``--daedalus-vectorization``): the 8 copies split over one child process per core (2 x 4,
  as RLlib's runners), policy and learner in the main process; ``sync``: all 8 copies in the main
  process. Periodic evaluation and checkpoints off; steps/s on its training clock (``time_split``);
- RLlib (new API stack): ``num_env_runners=2`` remote runners x 4 copies each (one runner per core,
  8 copies in all), ``rollout_fragment_length=100``, learner in the driver; steps/s = env steps
  sampled / wall seconds of the ``algo.train()`` calls (Ray start-up and building the algorithm
  excluded);
- agent-steps/s = env steps x 3 agents / training seconds;
- return: both trained policies play the same ``--episodes`` deterministic (greedy) episodes, episode
  ``i`` reset with seed ``100_000 + i``; the figure is the mean per-agent return (over agents and
  episodes), as ``daedalus evaluate`` prints it per policy. RLlib's own training-time
  ``episode_return_mean`` (team sum, sampled actions, last episodes) is printed next to it / 3;
- random policy: Daedalus's ``NamedMultiAgentVecEnv`` with the same 8 copies stepped with
  ``RandomPolicy`` actions, env steps/s, the ceiling of any trainer on this env and machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "examples" / "multiagent" / "simple_spread.yaml"
ENV_ARGS = {"N": 3, "max_cycles": 25, "continuous_actions": False}
AGENTS = 3
NUM_ENVS = 8
NUM_STEPS = 100  # per copy and rollout
EVAL_SEED = 100_000
# The example profile's PPO settings (examples/multiagent/simple_spread.yaml), RLlib's names.
GAMMA, LAMBDA, LR, ENT, CLIP, EPOCHS, MINIBATCHES = 0.95, 0.95, 1e-3, 0.01, 0.2, 10, 4


# --------------------------------------------------------------------------- RLlib (its own venv)


def make_spread() -> Any:
    from mpe2 import simple_spread_v3

    return simple_spread_v3.parallel_env(**ENV_ARGS)


def greedy_returns(act: Any, episodes: int) -> list[float]:
    """Per-agent returns of ``episodes`` greedy episodes, episode ``i`` reset with ``EVAL_SEED + i``."""
    import numpy as np

    out: list[float] = []
    env = make_spread()
    for i in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED + i)
        totals = dict.fromkeys(env.possible_agents, 0.0)
        while env.agents:
            names = list(obs)
            actions = act(np.stack([obs[name] for name in names]))
            obs, rewards, _, _, _ = env.step(dict(zip(names, actions.tolist(), strict=True)))
            for name, reward in rewards.items():
                totals[name] += float(reward)
        out.extend(totals.values())
    env.close()
    return out


def run_rllib(steps: int, seed: int, episodes: int, runners: int) -> dict[str, Any]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import ray
    import torch
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
    from ray.tune.registry import register_env

    torch.set_num_threads(1)
    ray.init(num_cpus=max(2, runners + 1), include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    register_env("simple_spread", lambda cfg: ParallelPettingZooEnv(make_spread()))
    per_runner = NUM_ENVS // max(runners, 1)
    batch = NUM_ENVS * NUM_STEPS  # env steps per update
    config = (
        PPOConfig()
        .environment("simple_spread")
        .framework("torch")
        .env_runners(num_env_runners=runners, num_envs_per_env_runner=per_runner, rollout_fragment_length=NUM_STEPS,
                     num_cpus_per_env_runner=1)
        .multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent_id, episode, **kwargs: "shared")
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[64, 64], fcnet_activation="tanh", vf_share_layers=False))
        .training(
            train_batch_size_per_learner=batch, minibatch_size=batch * AGENTS // MINIBATCHES, num_epochs=EPOCHS,
            lr=[[0, LR], [steps, 0.0]], gamma=GAMMA, lambda_=LAMBDA, entropy_coeff=ENT, clip_param=CLIP,
            vf_loss_coeff=0.5, vf_clip_param=float("inf"), use_kl_loss=False, grad_clip=0.5, grad_clip_by="global_norm",
        )
        .debugging(seed=seed, log_level="ERROR")
        .reporting(metrics_num_episodes_for_smoothing=100)
    )
    algo = config.build_algo()
    train_seconds = 0.0
    sampled = 0
    reported = float("nan")
    iterations = 0
    while sampled < steps:
        start = time.perf_counter()
        result = algo.train()
        train_seconds += time.perf_counter() - start
        iterations += 1
        runner_metrics = result.get("env_runners", {})
        sampled = int(result.get("num_env_steps_sampled_lifetime", runner_metrics.get("num_env_steps_sampled_lifetime", 0)))
        reported = float(runner_metrics.get("episode_return_mean", float("nan")))
    module = algo.get_module("shared")

    def act(obs: Any) -> Any:
        with torch.no_grad():
            out = module.forward_inference({"obs": torch.from_numpy(obs)})
        return out["action_dist_inputs"].argmax(-1).numpy()

    returns = greedy_returns(act, episodes)
    algo.stop()
    ray.shutdown()
    return {"env_steps": sampled, "train_seconds": train_seconds,
            "iterations": iterations, "per_agent_return": statistics.fmean(returns), "episodes": episodes,
            "reported_team_return": reported, "ray": ray.__version__, "torch": torch.__version__}


# --------------------------------------------------------------------------- Daedalus (this venv)


def run_daedalus(steps: int, seed: int, episodes: int, vectorization: str = "async") -> dict[str, Any]:
    import daedalus
    from daedalus import api

    with tempfile.TemporaryDirectory() as runs:
        run = daedalus.train(PROFILE, runs_dir=runs, overrides=[
            f"config.total_steps={steps}", f"seed={seed}", "config.eval_every_steps=0", "config.final_eval_episodes=0",
            "config.checkpoint_every_steps=0", "config.log_every_steps=1000000000", f"rollout.vectorization={vectorization}",
        ])
        if run.status != "completed":
            raise RuntimeError(f"daedalus run {run.status}: {run.error}")
        split = run.artifacts["time_split"]
        result, _ = api.evaluate_run(run.path, episodes=episodes, seed=EVAL_SEED)
    return {"env_steps": int(split["steps"]), "train_seconds": split["train_seconds"], "env_seconds": split["env"],
            "per_agent_return": result.policy_means()["default"], "episodes": episodes}


def run_random(steps: int, seed: int) -> dict[str, Any]:
    from daedalus.envs.pettingzoo import NamedMultiAgentVecEnv, make_pettingzoo
    from daedalus.rollout.policies import RandomPolicy

    def make_env(copy_seed: int | None) -> Any:
        return make_pettingzoo("mpe2:simple_spread_v3", ENV_ARGS)

    groups = {"default": [f"agent_{k}" for k in range(AGENTS)]}
    envs = NamedMultiAgentVecEnv(make_env, NUM_ENVS, groups, seed=seed)
    policy = RandomPolicy(envs.action_spaces["default"], seed=seed)
    obs = envs.reset()
    vector_steps = max(1, steps // NUM_ENVS)
    start = time.perf_counter()
    for _ in range(vector_steps):
        out = envs.step({"default": policy.act(obs["default"]).to_env()})
        obs = {"default": out["default"].obs}
    seconds = time.perf_counter() - start
    envs.close()
    return {"env_steps": vector_steps * NUM_ENVS, "train_seconds": seconds}


# --------------------------------------------------------------------------- orchestration


def rllib_subprocess(python: str, steps: int, seed: int, episodes: int, runners: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [python, str(Path(__file__).resolve()), "--worker", "rllib", "--steps", str(steps), "--seeds", str(seed),
                   "--episodes", str(episodes), "--rllib-runners", str(runners), "--out", out.name]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if done.returncode != 0:
            raise RuntimeError(f"RLlib worker failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
        return json.loads(Path(out.name).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000, help="env steps of training per run (the issue's curves go to 2M)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--episodes", type=int, default=200, help="greedy evaluation episodes per trained policy")
    parser.add_argument("--random-steps", type=int, default=100_000, help="env steps of the random-policy measurement")
    parser.add_argument("--daedalus-vectorization", default="async", choices=["sync", "async"],
                        help="Daedalus's rollout.vectorization: async splits the 8 copies over one child process per core (as RLlib's runners)")
    parser.add_argument("--rllib-runners", type=int, default=2, help="RLlib remote env runners (8 copies split among them)")
    parser.add_argument("--rllib-python", default=str(ROOT / "benchmarks" / ".venv-rllib" / "bin" / "python"))
    parser.add_argument("--skip", default="", help="comma-separated subset of random,rllib,daedalus to leave out")
    parser.add_argument("--worker", choices=["rllib"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s]
    if args.worker == "rllib":
        Path(args.out).write_text(json.dumps(run_rllib(args.steps, seeds[0], args.episodes, args.rllib_runners)))
        return

    import torch

    torch.set_num_threads(1)
    skip = set(args.skip.split(","))
    rows: dict[str, list[dict[str, Any]]] = {"random": [], "rllib": [], "daedalus": []}
    print(f"simple_spread N=3 max_cycles=25 discrete; {args.steps:,} env steps per run; seeds {seeds}; "
          f"{args.episodes} greedy eval episodes; torch {torch.__version__}; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; Daedalus vectorization {args.daedalus_vectorization}", flush=True)
    for seed in seeds:
        if "random" not in skip:
            rows["random"].append(run_random(args.random_steps, seed))
        if "rllib" not in skip:
            rows["rllib"].append(rllib_subprocess(args.rllib_python, args.steps, seed, args.episodes, args.rllib_runners))
        if "daedalus" not in skip:
            rows["daedalus"].append(run_daedalus(args.steps, seed, args.episodes, args.daedalus_vectorization))
        for lib, rs in rows.items():
            if rs and len(rs) == seeds.index(seed) + 1:
                r = rs[-1]
                sps = r["env_steps"] / r["train_seconds"]
                ret = f"  per-agent return {r['per_agent_return']:.2f}" if "per_agent_return" in r else ""
                extra = f"  (RLlib's training episode_return_mean / 3: {r['reported_team_return'] / AGENTS:.2f}; ray {r['ray']})" if lib == "rllib" else ""
                print(f"  seed {seed} {lib:8s} {r['env_steps']:>9,} env steps in {r['train_seconds']:7.1f} s: {sps:8,.0f} env steps/s, "
                      f"{sps * AGENTS:8,.0f} agent-steps/s{ret}{extra}", flush=True)

    def med(lib: str, key: str) -> float:
        values = [r["env_steps"] * AGENTS / r["train_seconds"] if key == "asps" else r[key] for r in rows[lib]]
        return statistics.median(values) if values else float("nan")

    print(f"\n| | agent-steps/s | per-agent return ({args.episodes} greedy episodes) |")
    print("| --- | ---: | ---: |")
    for lib in ("random", "rllib", "daedalus"):
        if rows[lib]:
            ret = f"{med(lib, 'per_agent_return'):.2f}" if lib != "random" else "-"
            print(f"| {lib} | {med(lib, 'asps'):,.0f} | {ret} |")
    if rows["rllib"] and rows["daedalus"]:
        print(f"Daedalus / RLlib agent-steps/s: x{med('daedalus', 'asps') / med('rllib', 'asps'):.2f} (target x3); "
              f"return {med('daedalus', 'per_agent_return'):.2f} vs {med('rllib', 'per_agent_return'):.2f}")
    if rows["random"] and rows["daedalus"]:
        print(f"Daedalus / random policy: {100 * med('daedalus', 'asps') / med('random', 'asps'):.0f}% (target 70%)")


if __name__ == "__main__":
    main()
