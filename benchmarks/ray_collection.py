"""Collection on Ray actors (``RaySource``): scaling, overhead against the subprocess source, start-up.

(a) **Scaling.** A sleep-bound env (``sleep_env.py``: every step waits 2 ms, so it scales on 2 cores),
    one copy per Ray worker, a ``RandomPolicy`` (no ``copy_factory``: pickled whole), 1, 2, 4, 8
    workers at ``cpus_per_worker`` 0.1 on one local Ray. Each round is ``RaySource.sample(policies,
    num_steps)`` (256 steps per copy by default), timed over ``--rounds`` rounds after a warm-up
    round; steps/s = workers x num_steps x rounds / seconds. The ratio is to N x the 1-worker figure
    (target >= 0.85); "over bare" is a round's median time less 256 steps of the same env stepped
    bare in this process (Ray's cost per round); "env+act" is what a worker reports of a round inside
    ``env.step``/``reset`` and ``policy.act``. All sources live for the whole part; repeats
    interleave the worker counts.
(b) **Overhead.** PPO on CartPole-v1 through ``daedalus.train`` with ``examples/cartpole.yaml``'s config
    (8 copies, num_steps 32 unless ``--num-steps``; periodic and final evaluation, checkpoints and plots
    off), ``rollout: {backend: ray, num_workers: 2, envs_per_worker: 4}`` (a fresh local Ray per run,
    started and stopped by the run) vs ``rollout: {backend: subprocess}``, interleaved. Training
    seconds are ``artifacts["time_split"]["train_seconds"]`` (training clock: starts after the source
    is built, so it includes starting Ray's workers but not ``ray.init``); steady steps/s counts
    what follows the first update (its end to the last update's end); whole run is ``run.json``'s
    ``duration_s`` (``ray.init`` and ``ray.shutdown`` included). Target: Ray at most 20% slower.
(c) **Start-up / shutdown.** Short PPO runs as in (b) (4 rollouts), interleaved: seconds from the
    ``daedalus.train`` call to the first ``on_rollout_end`` / ``on_update`` hook, from the start of
    ``ray.init`` (called by the run) to the same hooks, ``ray.init`` itself, the source's ``close``
    (Ray: workers killed and ``ray.shutdown``) and ``ray.shutdown`` alone. The calls are timed by
    wrapping ``ray.init``, ``ray.shutdown`` and the sources' ``close`` for the run's duration.

(b) and (c) start with one unrecorded short run per backend (``--quick``: subprocess only), so this
process's imports are warm (a CLI run pays them on top). Each of their Ray runs starts and stops its
own local Ray, as a user's run does (leave ``RAY_ADDRESS`` unset: with it the runs join that cluster).

    .venv/bin/python benchmarks/ray_collection.py [--only a|b|c] [--repeats 3] [--busy] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from _harness import median
from busy_core import spin
from sleep_env import SLEEP_ID, SleepMaker

BENCH = Path(__file__).resolve().parent
CARTPOLE_CONFIG: dict[str, Any] = yaml.safe_load((BENCH.parent / "examples" / "cartpole.yaml").read_text())["cartpole_ppo"]["config"]
BACKENDS = {"subprocess": {"backend": "subprocess"}, "ray": {"backend": "ray", "num_workers": 2, "envs_per_worker": 4}}


def table(header: list[str], rows: list[list[str]]) -> None:
    """Print a markdown table."""
    print("| " + " | ".join(header) + " |")
    print("| --- |" + " ---: |" * (len(header) - 1))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


# --------------------------------------------------------------------------- (a) scaling


def bare_seconds(num_steps: int) -> float:
    """Seconds of ``num_steps`` steps of one sleep env stepped bare in this process (median of 3)."""
    env = SleepMaker()(0)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(num_steps):
            env.step(0)
        times.append(time.perf_counter() - start)
    env.close()
    return median(times)


def scaling(worker_counts: list[int], num_steps: int, rounds: int, repeats: int) -> None:
    import ray

    from daedalus.rollout import DEFAULT_GROUP
    from daedalus.rollout.policies import RandomPolicy
    from daedalus.rollout.ray_source import RayOptions, RaySource, worker_source

    # Workers unpickle sleep_env.SleepMaker by name: put this folder on their path. Otherwise as
    # ray_source.connect starts a local Ray (which then leaves it running); address="local": a new
    # one even when another Ray runs on this machine (ray.init() would join that one).
    path = os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")]))
    ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, object_store_memory=256 * 2**20,
             logging_level="ERROR", log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    maker = SleepMaker()

    def build(first_copy: int) -> Callable[[Any], Any]:
        return partial(worker_source, maker.recipe, 1, SLEEP_ID, {}, "sync")

    sources: dict[int, Any] = {}
    rates: dict[int, list[float]] = {n: [] for n in worker_counts}
    round_s: dict[int, list[float]] = {n: [] for n in worker_counts}
    inside: dict[int, list[float]] = {n: [] for n in worker_counts}  # env + policy seconds per worker and round
    try:
        bare = bare_seconds(num_steps)
        for n in worker_counts:
            sources[n] = RaySource(build, 1, RayOptions(num_workers=n, cpus_per_worker=0.1), maker, seed=n)
            sources[n].reset(seed=n)
            sources[n].sample({DEFAULT_GROUP: RandomPolicy(sources[n].action_space, seed=0)}, num_steps)  # warm-up
        for _ in range(repeats):
            for n in worker_counts:
                policies = {DEFAULT_GROUP: RandomPolicy(sources[n].action_space, seed=0)}
                worker_s = sources[n].env_time + sources[n].inference_time
                start = time.perf_counter()
                for _ in range(rounds):
                    began = time.perf_counter()
                    trajectory = sources[n].sample(policies, num_steps)[DEFAULT_GROUP]
                    round_s[n].append(time.perf_counter() - began)
                    assert trajectory.num_transitions == n * num_steps, trajectory.num_transitions
                rates[n].append(n * num_steps * rounds / (time.perf_counter() - start))
                inside[n].append((sources[n].env_time + sources[n].inference_time - worker_s) / (n * rounds))
    finally:
        for source in sources.values():
            source.close()
        ray.shutdown()
    one = median(rates[worker_counts[0]]) / worker_counts[0]
    print(f"(a) sleep env (2 ms per step), 1 copy per worker, num_steps {num_steps}, {rounds} rounds x {repeats} repeats; "
          f"bare: {num_steps} steps in {bare * 1e3:.0f} ms = {num_steps / bare:,.0f} steps/s\n")
    rows = []
    for n in worker_counts:
        rate, per_round = median(rates[n]), median(round_s[n])
        rows.append([str(n), f"{rate:,.0f}", f"x{rate / (n * one):.2f}", f"{per_round * 1e3:,.0f}", f"{(per_round - bare) * 1e3:,.1f}",
                     f"{median(inside[n]) * 1e3:,.0f}", ", ".join(f"{r:,.0f}" for r in rates[n])])
    table(["workers", "steps/s (median)", "/ (N x 1 worker)", "round ms", "over bare ms", "env+act ms in a worker", "per repeat"], rows)


# --------------------------------------------------------------------------- (b), (c): PPO through daedalus.train


class Clock:
    """Hook: when the first rollout and the first and last updates ended (``time.perf_counter``),
    and the steps done at the first and last update."""

    def __init__(self) -> None:
        self.first_rollout = self.first_update = self.last_update = float("nan")
        self.first_steps = self.last_steps = 0

    def on_rollout_end(self, info: Any) -> None:
        if math.isnan(self.first_rollout):
            self.first_rollout = time.perf_counter()

    def on_update(self, info: Any) -> None:
        self.last_update, self.last_steps = time.perf_counter(), info.step
        if math.isnan(self.first_update):
            self.first_update, self.first_steps = self.last_update, info.step


@contextlib.contextmanager
def timed_calls(calls: dict[str, list[tuple[float, float]]], targets: dict[str, tuple[Any, str]]) -> Iterator[None]:
    """Record (start, end) of every call of ``owner.name`` under its key while the block runs."""
    saved = []
    for key, (owner, name) in targets.items():
        original = getattr(owner, name)

        def timed(*args: Any, _original: Any = original, _key: str = key, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                calls.setdefault(_key, []).append((start, time.perf_counter()))

        saved.append((owner, name, original))
        setattr(owner, name, timed)
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def ppo_run(backend: str, total_steps: int, num_steps: int, seed: int) -> dict[str, float]:
    """One ``daedalus.train`` run of PPO CartPole-v1 on ``backend``: its timings (seconds, steps/s)."""
    import ray

    import daedalus
    from daedalus.rollout.ray_source import RaySource
    from daedalus.rollout.source import LocalSource

    config = {**CARTPOLE_CONFIG, "total_steps": total_steps, "num_steps": num_steps, "eval_every_steps": 0,
              "final_eval_episodes": 0, "checkpoint_every_steps": 0, "torch_threads": 1}
    clock, calls = Clock(), {}
    targets = {"init": (ray, "init"), "shutdown": (ray, "shutdown"), "close": (RaySource if backend == "ray" else LocalSource, "close")}
    with tempfile.TemporaryDirectory() as runs, timed_calls(calls, targets), \
            contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        called = time.perf_counter()
        result = daedalus.train(agent_id="ppo", env_id="CartPole-v1", num_envs=8, seed=seed, rollout=BACKENDS[backend],
                                config=config, runs_dir=runs, callbacks=[clock])
    assert result.status == "completed", f"{backend} run {result.status}: {result.error}"
    train_s = float(result.artifacts["time_split"]["train_seconds"])
    init = calls.get("init", [(float("nan"),) * 2])[0]
    return {
        "train_s": train_s, "rate": result.steps / train_s, "whole_s": result.duration_s,
        "steady": (clock.last_steps - clock.first_steps) / (clock.last_update - clock.first_update or float("nan")),
        "to_rollout": clock.first_rollout - called, "to_update": clock.first_update - called,
        "init_s": init[1] - init[0], "init_to_rollout": clock.first_rollout - init[0], "init_to_update": clock.first_update - init[0],
        "close_s": sum(end - start for start, end in calls.get("close", [])),
        "shutdown_s": sum(end - start for start, end in calls.get("shutdown", [])) if "shutdown" in calls else float("nan"),
    }


def compare(total_steps: int, num_steps: int, repeats: int) -> dict[str, list[dict[str, float]]]:
    """Interleaved runs: subprocess, then Ray, per repeat; seed = repeat."""
    runs: dict[str, list[dict[str, float]]] = {b: [] for b in BACKENDS}
    for seed in range(repeats):
        for backend in BACKENDS:
            runs[backend].append(ppo_run(backend, total_steps, num_steps, seed))
    return runs


def column(runs: list[dict[str, float]], key: str, digits: int = 2) -> tuple[float, str]:
    """The median of ``key`` over runs, and it printed with the per-run values (``-``: not measured)."""
    values = [r[key] for r in runs]
    if all(math.isnan(v) for v in values):
        return float("nan"), "-"
    return median(values), f"{median(values):,.{digits}f} ({', '.join(f'{v:,.{digits}f}' for v in values)})"


def overhead(total_steps: int, num_steps: int, repeats: int) -> None:
    runs = compare(total_steps, num_steps, repeats)
    print(f"(b) PPO CartPole-v1, 8 copies x num_steps {num_steps}, {total_steps:,} steps x {repeats} interleaved runs; medians (per run)\n")
    rows, rates = [], {}
    for backend, label in (("subprocess", "subprocess"), ("ray", "ray, 2 workers x 4 copies")):
        rates[backend], rate = column(runs[backend], "rate", 0)
        rows.append([label, column(runs[backend], "train_s")[1], rate, column(runs[backend], "steady", 0)[1], column(runs[backend], "whole_s")[1]])
    table(["rollout", "train s (time_split)", "steps/s", "steady steps/s", "whole run s (run.json)"], rows)
    print(f"Ray steps/s / subprocess steps/s: x{rates['ray'] / rates['subprocess']:.2f} (target >= x0.80)\n")


def startup(num_steps: int, repeats: int) -> None:
    runs = compare(4 * 8 * num_steps, num_steps, repeats)
    print(f"(c) start-up and shutdown, PPO CartPole-v1 runs of 4 rollouts, {repeats} interleaved runs; seconds, medians (per run)\n")
    keys = [("train() -> first rollout", "to_rollout"), ("train() -> first update", "to_update"), ("ray.init", "init_s"),
            ("ray.init -> first rollout", "init_to_rollout"), ("ray.init -> first update", "init_to_update"),
            ("source close", "close_s"), ("ray.shutdown (in close)", "shutdown_s")]
    rows = [[label, column(runs["subprocess"], key, 3)[1], column(runs["ray"], key, 3)[1]] for label, key in keys]
    table(["", "subprocess", "ray, 2 workers x 4 copies"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["a", "b", "c"], help="run one part")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", action="store_true", help="keep one core busy with another process")
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke check of the script")
    parser.add_argument("--workers", default="1,2,4,8", help="(a) worker counts")
    parser.add_argument("--rounds", type=int, default=8, help="(a) timed rounds per worker count and repeat")
    parser.add_argument("--rollout-steps", type=int, default=256, help="(a) num_steps of a round")
    parser.add_argument("--total-steps", type=int, default=50_000, help="(b) PPO steps per run")
    parser.add_argument("--num-steps", type=int, default=int(CARTPOLE_CONFIG["num_steps"]), help="(b, c) PPO num_steps")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.workers, args.rounds, args.rollout_steps, args.total_steps = 1, "1,2,4", 2, 64, 4_096
    os.environ.setdefault("DAEDALUS_PLOTS", "0")
    os.environ.setdefault("DAEDALUS_PROGRESS", "plain")
    busy = mp.get_context("spawn").Process(target=spin, daemon=True) if args.busy else None
    if busy is not None:
        busy.start()
    print(f"machine: {os.cpu_count()} cores, {'one core busy' if args.busy else 'no busy process'}\n")
    try:
        if args.only in (None, "a"):
            scaling([int(n) for n in args.workers.split(",")], args.rollout_steps, args.rounds, args.repeats)
        if args.only != "a":  # warm-up: one unrecorded short run per backend (this process's imports)
            for backend in ["subprocess"] if args.quick else BACKENDS:
                ppo_run(backend, 2 * 8 * args.num_steps, args.num_steps, 0)
        if args.only in (None, "b"):
            overhead(args.total_steps, args.num_steps, args.repeats)
        if args.only in (None, "c"):
            startup(args.num_steps, args.repeats)
    finally:
        if busy is not None:
            busy.terminate()


if __name__ == "__main__":
    main()
