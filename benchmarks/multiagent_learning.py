"""Multi-agent learning figures, run on purpose (not in the test suite): simple_tag cross-play and
tic-tac-toe self-play against random players, with the examples' hyperparameters.

    .venv/bin/python benchmarks/multiagent_learning.py [--tag-steps 100000] [--ttt-steps 300000] [--seeds 0]

- simple_tag (mpe2, 3 chasers + 1 prey, two policies trained at once): each trained policy is
  evaluated over 200 episodes against a uniformly random opponent (``--policy NAME=random``), next
  to random against random.
- tictactoe (AEC, action masks, one policy shared by both players): the trained policy (greedy)
  plays 100 games as each player against a uniformly random legal player; wins and draws counted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import daedalus
from daedalus import api
from daedalus.algos.on_policy import ActorCriticPolicy
from daedalus.rollout.multiagent import evaluate_policies
from daedalus.rollout.policies import RandomPolicy

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "multiagent"


def simple_tag(steps: int, seed: int, runs: Path) -> str:
    start = time.perf_counter()
    run = daedalus.train(
        EXAMPLES / "simple_tag.yaml", runs_dir=runs,
        overrides=[f"config.total_steps={steps}", f"seed={seed}", "config.final_eval_episodes=0", "config.eval_every_steps=0"],
    )
    seconds = time.perf_counter() - start
    chasers, _ = api.evaluate_run(run.path, episodes=200, seed=100_000, policies=["prey=random"])
    prey, _ = api.evaluate_run(run.path, episodes=200, seed=100_000, policies=["chaser=random"])
    both, _ = api.evaluate_run(run.path, episodes=200, seed=100_000, policies=["chaser=random", "prey=random"])
    random = both.policy_means()
    return (
        f"| simple_tag | {seed} | {steps:,} | {seconds:.0f} | trained chasers vs random prey: "
        f"{chasers.policy_means()['chaser']:.2f} per chaser (random vs random {random['chaser']:.2f}); trained prey vs "
        f"random chasers: {prey.policy_means()['prey']:.2f} (random prey {random['prey']:.2f}) |"
    )


def tictactoe(steps: int, seed: int, runs: Path) -> str:
    start = time.perf_counter()
    run = daedalus.train(
        EXAMPLES / "tictactoe.yaml", runs_dir=runs,
        overrides=[f"config.total_steps={steps}", f"seed={seed}", "config.final_eval_episodes=0"],
    )
    seconds = time.perf_counter() - start
    loaded = api.load_run(run.path)
    trained = ActorCriticPolicy(loaded.agent.policies["default"])
    context = SimpleNamespace(make_env=loaded.resolved.make_env)
    random = RandomPolicy(loaded.resolved.group_spaces["default"][1], seed=1)
    parts = []
    for me, other in (("player_1", "player_2"), ("player_2", "player_1")):
        groups = {"me": [me], "other": [other]}
        result = evaluate_policies(context, groups, {"me": trained, "other": random}, 100, True, 100_000)
        mine = np.array(result.agent_returns[me])
        parts.append(f"as {me}: {100 * (mine >= 0).mean():.0f}% win or draw ({100 * (mine > 0).mean():.0f}% wins)")
    return f"| tictactoe | {seed} | {steps:,} | {seconds:.0f} | {'; '.join(parts)} |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag-steps", type=int, default=100_000)
    parser.add_argument("--ttt-steps", type=int, default=300_000)
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    print("| env | seed | env steps | train s | result |")
    print("| --- | ---: | ---: | ---: | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            print(simple_tag(args.tag_steps, seed, Path(tmp) / "runs"), flush=True)
            print(tictactoe(args.ttt_steps, seed, Path(tmp) / "runs"), flush=True)


if __name__ == "__main__":
    sys.exit(main())
