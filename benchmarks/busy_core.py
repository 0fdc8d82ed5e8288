"""`daedalus train examples/cartpole.yaml` while another process keeps one of the cores busy.

A user's machine is never idle. With one core taken, torch's default thread count (one per core)
makes every small forward pass wait for the busy core; the profile's ``torch_threads`` must hold
for the whole run, final evaluation included. For each repeat this prints the whole-process wall
time of the command, the training steps/s it logged and the steps/s of the final 20-episode
evaluation (timed separately on the saved agent, through ``daedalus.load_run`` and
``daedalus.evaluate``, as ``daedalus evaluate`` runs it).

    .venv/bin/python benchmarks/busy_core.py [--repeats 3] [--quiet]   # --quiet: no busy process
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def spin() -> None:
    """Keep one core busy until terminated."""
    x = 0
    while True:
        x += 1


def one_run(runs_dir: str) -> tuple[float, float, float]:
    """(whole-process seconds, training steps/s, final-evaluation steps/s)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "daedalus", "train", str(ROOT / "examples" / "cartpole.yaml"), "--runs-dir", runs_dir],
        check=True, capture_output=True, env={**os.environ, "DAEDALUS_PROGRESS": "plain"},
    )
    whole = time.perf_counter() - start
    (run,) = Path(runs_dir).glob("cartpole_ppo-*")
    with open(run / "metrics.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("charts/steps_per_second")]
    train_rate = float(rows[-1]["charts/steps_per_second"])
    code = (
        "import time, daedalus\n"
        f"run = daedalus.load_run({str(run)!r})\n"
        "start = time.perf_counter()\n"
        "result = daedalus.evaluate(run.agent, run.resolved.make_env, n_episodes=20, deterministic=True, seed=100000)\n"
        "print(sum(result.lengths) / (time.perf_counter() - start))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return whole, train_rate, float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quiet", action="store_true", help="no busy process (the idle-machine figure)")
    args = parser.parse_args()
    busy = None if args.quiet else mp.get_context("spawn").Process(target=spin, daemon=True)
    if busy is not None:
        busy.start()
    results = []
    try:
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as runs:
                results.append(one_run(runs))
    finally:
        if busy is not None:
            busy.terminate()
    state = "idle machine" if args.quiet else "one core busy"
    print(f"daedalus train examples/cartpole.yaml, {state}, {args.repeats} runs")
    for name, index, unit in (("whole process", 0, "s"), ("training", 1, "steps/s"), ("final evaluation", 2, "steps/s")):
        values = [r[index] for r in results]
        print(f"  {name:<17} median {statistics.median(values):>10,.1f} {unit}   per run: {', '.join(f'{v:,.1f}' for v in values)}")


if __name__ == "__main__":
    main()
