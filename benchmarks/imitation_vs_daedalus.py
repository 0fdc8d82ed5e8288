"""BC, GAIL and AIRL: the ``imitation`` library (1.0.1) vs Daedalus, same demonstrations, side by side.

``imitation`` lives in its own virtualenv (it needs gymnasium 0.29, Daedalus gymnasium 1.x). From the
repository root:

    python3 -m venv benchmarks/.venv-imitation
    benchmarks/.venv-imitation/bin/pip install -c constraints.txt torch==2.13.0      # the CPU wheel, first
    benchmarks/.venv-imitation/bin/pip install "gymnasium==0.29.1" "stable-baselines3==2.2.1" seals
    benchmarks/.venv-imitation/bin/pip install --no-deps imitation==1.0.1
    benchmarks/.venv-imitation/bin/pip install tqdm tensorboard       # what BC, GAIL and AIRL import at run time
    benchmarks/.venv-imitation/bin/python -c "import imitation.algorithms.bc, imitation.algorithms.adversarial.gail, imitation.algorithms.adversarial.airl"
    .venv/bin/python -m pip install -c constraints.txt seals            # seals/CartPole-v0 for Daedalus too

(``constraints.txt`` is for the torch wheel only: it pins gymnasium>=1.0, and imitation needs 0.29;
``--no-deps`` because imitation's metadata pulls sacred, optuna, datasets, huggingface-sb3, ... that
BC, GAIL and AIRL never import.) Then, with Daedalus's environment:

    .venv/bin/python benchmarks/imitation_vs_daedalus.py                        # bc, gail, airl; seeds 0,1,2 (~10 min)
    .venv/bin/python benchmarks/imitation_vs_daedalus.py --quick                # smoke check (~1 min)
    .venv/bin/python benchmarks/imitation_vs_daedalus.py --methods gail --seeds 0,1,2 --budget-s 120

Protocol:

- env: ``seals/CartPole-v0`` on both sides (CartPole with a fixed horizon of 500 steps and no early
  termination, reward 1 while the pole is up: what imitation's adversarial trainers require);
- demonstrations: a Daedalus PPO expert (8 envs, ``examples/cartpole.yaml``'s settings with gamma
  0.99 / GAE lambda 0.9, 100k steps) plays 10 deterministic episodes through ``daedalus demos
  record``'s api (``record_demos``, episode ``i`` reset with seed ``i``; every episode must return
  >= 475, else the script stops); the same episodes are written as an
  imitation ``TrajectoryWithRew`` npz (obs, acts, rews, terminal, indices), read back by Daedalus and
  checked equal, and turned into ``TrajectoryWithRew`` objects on the imitation side: both learn from
  identical transitions;
- hyperparameters: :func:`settings` (one dict, sent to the imitation side as JSON). BC: 64x64 tanh
  policy, batch 64, Adam lr 1e-3, entropy weight 1e-3, no L2. GAIL / AIRL generator: PPO with 8 envs x
  32 steps, one minibatch of 256, 10 epochs, lr 1e-3 constant, gamma 0.99, GAE lambda 0.9, clip 0.2,
  no entropy bonus, vf coefficient 0.5, gradient norm 0.5, separate 64x64 tanh actor and critic;
  discriminator: 64x64 tanh MLPs (AIRL: state-only reward g(s) and potential h(s), shaped reward f for
  the generator, imitation's ``reward_train``), Adam lr 1e-3 eps 1e-8, 4 updates per round of 256
  expert + 256 generator transitions;
- clock: training only. Every ``eval_every`` steps (BC: gradient steps; GAIL/AIRL: env steps, a
  multiple of the 256-step round) the policy plays 20 deterministic episodes, episode ``i`` reset with
  seed ``seed + 10_000 + i``, with the clock paused (Daedalus: its periodic evaluation, ``target_return:
  475``; imitation: ``_imitation_side.py``'s evaluator in ``BC.train`` chunks / the adversarial round
  callback). Time to 475 is the training clock at the first evaluation >= 475;
- cap: a run stops at the first evaluation after ``--budget-s`` training seconds or at the method's
  step cap, and is reported "not reached in X s / N steps";
- grid and caps: BC evaluates every 250 gradient steps (cap 10,000), GAIL and AIRL every 5,120 env
  steps (cap 150,000); ``--budget-s`` 60 by default;
- per seed, imitation (a subprocess of its venv's python) then Daedalus (this process), method by
  method; 1 torch thread on both sides; Daedalus steps its 8 copies one after another in its own
  process (``vectorization: sync``), as imitation's ``DummyVecEnv`` does; medians over seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import first_hit, median  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HELPER = Path(__file__).resolve().parent / "_imitation_side.py"
ENV_ID = "seals/CartPole-v0"
THRESHOLD = 475.0
EVAL_EPISODES = 20
EVAL_SEED_OFFSET = 10_000  # Daedalus's periodic evaluation resets episode i with seed + 10_000 + i
DEMO_EPISODES = 10
METHODS = ("bc", "gail", "airl")
#: Daedalus steps its copies in this process, one after another, as imitation's DummyVecEnv does ("auto" may pick
#: subprocesses when a timing probe finds the env slow, which a busy machine can make it).
ROLLOUT = {"backend": "local", "vectorization": "sync"}
EXPERT = {  # Daedalus PPO on seals/CartPole-v0
    "total_steps": 100_000, "num_steps": 32, "num_minibatches": 1, "update_epochs": 10, "learning_rate": 5e-3,
    "anneal_lr": True, "gamma": 0.99, "gae_lambda": 0.9,
}


def settings(budget_s: float, quick: bool) -> dict[str, Any]:
    """Every shared hyperparameter, the evaluation grid and the caps (Daedalus's config names)."""
    generator = {
        "num_envs": 8, "num_steps": 32, "num_minibatches": 1, "update_epochs": 10, "learning_rate": 1e-3, "gamma": 0.99,
        "gae_lambda": 0.9, "clip_coef": 0.2, "ent_coef": 0.0, "vf_coef": 0.5, "max_grad_norm": 0.5, "hidden_sizes": [64, 64],
    }
    discriminator = {
        "disc_hidden_sizes": [64, 64], "disc_learning_rate": 1e-3, "disc_adam_eps": 1e-8, "disc_updates_per_round": 4,
        "disc_batch_size": 256,
    }
    return {
        "env_id": ENV_ID, "threshold": THRESHOLD, "eval_episodes": EVAL_EPISODES, "eval_seed_offset": EVAL_SEED_OFFSET,
        "budget_s": budget_s,
        "bc": {"batch_size": 64, "learning_rate": 1e-3, "ent_weight": 1e-3, "l2_weight": 0.0, "hidden_sizes": [64, 64],
               "eval_every": 250, "max_steps": 1_000 if quick else 10_000},
        "gail": {**generator, **discriminator, "eval_every": 5_120, "max_steps": 10_240 if quick else 150_000},
        # AIRL: the generator and discriminator of imitation's AIRL tutorial (docs/tutorials/4_train_airl), with
        # 64-transition minibatches instead of 16 and 1,024-transition discriminator batches instead of 2,048
        # (10 episodes hold 5,000): GAIL's settings above reached 475 on neither side in 150k steps.
        "airl": {
            **generator, **discriminator, "num_steps": 256, "num_minibatches": 32, "update_epochs": 5, "learning_rate": 5e-4,
            "gamma": 0.95, "clip_coef": 0.1, "vf_coef": 0.1, "disc_updates_per_round": 16, "disc_batch_size": 1_024,
            "state_only": True, "eval_every": 10_240, "max_steps": 10_240 if quick else 300_000,
        },
    }


# --------------------------------------------------------------------------- demonstrations


def make_demonstrations(work: Path) -> tuple[Path, Path, dict[str, Any]]:
    """Train the expert, record the demonstrations (a Daedalus folder) and write them as imitation's npz."""
    import numpy as np

    import daedalus
    from daedalus.api.demos import load_demos, record_demos

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        expert = daedalus.train(
            agent_id="ppo", env_id=ENV_ID, num_envs=8, seed=0, runs_dir=str(work / "runs"), rollout=ROLLOUT,
            config={**EXPERT, "eval_every_steps": 0, "final_eval_episodes": 20, "checkpoint_every_steps": 0, "log_every_steps": 10**9},
        )
    if expert.status != "completed":
        raise RuntimeError(f"expert run {expert.status}: {expert.error}")
    folder = work / "demos"
    demos = record_demos(expert.path, episodes=DEMO_EPISODES, output=folder, seed=0)
    if demos.episode_returns.min() < THRESHOLD:
        raise RuntimeError(f"the expert's demonstrations have returns {demos.episode_returns.tolist()}: not all >= {THRESHOLD:g}")
    npz = work / "demos.npz"
    ends = np.cumsum(demos.episode_lengths)
    np.savez(npz, obs=demos.obs, acts=demos.actions, rews=demos.rewards, terminal=demos.terminated, indices=ends[:-1])
    # The npz read back by Daedalus (its imitation-npz reader) holds the same transitions as the folder.
    back = load_demos(npz)
    for name in ("obs", "actions", "rewards", "episode_lengths", "terminated", "truncated"):
        if not np.array_equal(getattr(back, name), getattr(demos, name)):
            raise RuntimeError(f"the imitation npz and the demonstrations folder differ in {name}")
    info = {"expert_seconds": time.perf_counter() - start, "expert_final_return": expert.final_return,
            "episodes": len(demos), "steps": demos.num_steps, "mean_return": demos.mean_return}
    return folder, npz, info


# --------------------------------------------------------------------------- the two sides


def run_imitation(python: str, method: str, seed: int, npz: Path, settings_file: Path) -> dict[str, Any]:
    """One imitation run in its venv (``_imitation_side.py``)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [python, str(HELPER), "--method", method, "--seed", str(seed), "--demos", str(npz),
                   "--settings", str(settings_file), "--out", out.name]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if done.returncode != 0:
            raise RuntimeError(f"imitation run failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
        return json.loads(Path(out.name).read_text())


class Budget:
    """Stop a Daedalus run at the first evaluation after ``seconds`` of training clock."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_eval(self, info: Any) -> str | None:
        return f"budget {self.seconds:g} s spent" if info.train_seconds >= self.seconds else None


def run_daedalus(method: str, seed: int, demos: Path, spec: dict[str, Any], budget_s: float, runs_dir: Path) -> dict[str, Any]:
    """One Daedalus run through ``daedalus.train`` (periodic evaluation stops it at 475)."""
    import daedalus

    schedule = {"total_steps": spec["max_steps"], "eval_every_steps": spec["eval_every"], "eval_episodes": EVAL_EPISODES,
                "eval_deterministic": True, "target_return": THRESHOLD, "final_eval_episodes": 0, "checkpoint_every_steps": 0,
                "log_every_steps": 10**9, "torch_threads": 1}
    if method == "bc":
        config = {key: spec[key] for key in ("batch_size", "learning_rate", "ent_weight", "l2_weight", "hidden_sizes")}
        profile: dict[str, Any] = {"agent_id": "bc"}
    else:
        keys = ["num_steps", "num_minibatches", "update_epochs", "learning_rate", "gamma", "gae_lambda", "clip_coef", "ent_coef",
                "vf_coef", "max_grad_norm", "hidden_sizes", "disc_hidden_sizes", "disc_learning_rate", "disc_updates_per_round",
                "disc_batch_size"]
        config = {key: spec[key] for key in keys}
        config.update({"anneal_lr": False, "disc_activation": "tanh", "disc_init": "torch"})  # imitation's reward nets: PyTorch's init
        if method == "airl":
            config.update({"state_only": spec["state_only"], "reward": "shaped"})
        profile = {"agent_id": method, "num_envs": spec["num_envs"]}
    with contextlib.redirect_stdout(io.StringIO()):  # the run's progress lines
        run = daedalus.train(
            env_id=ENV_ID, seed=seed, runs_dir=str(runs_dir), rollout=ROLLOUT, callbacks=[Budget(budget_s)],
            config={**config, **schedule, "demos": str(demos)}, **profile,
        )
    if run.status != "completed":
        raise RuntimeError(f"daedalus {method} run {run.status}: {run.error}")
    evaluations = run.artifacts["evaluations"]
    return {"evaluations": evaluations, "steps": int(run.artifacts["time_split"]["steps"]),
            "train_seconds": run.artifacts["time_split"]["train_seconds"]}


# --------------------------------------------------------------------------- report


def summary(result: dict[str, Any]) -> dict[str, float]:
    """Time and steps to the threshold (inf if not reached), final return, steps per training second."""
    evaluations = result["evaluations"]
    return {"seconds": first_hit(evaluations, THRESHOLD), "steps": first_hit(evaluations, THRESHOLD, key="step"),
            "final": evaluations[-1]["mean_return"] if evaluations else float("nan"),
            "last_seconds": evaluations[-1]["train_seconds"] if evaluations else result["train_seconds"],
            "last_step": evaluations[-1]["step"] if evaluations else result["steps"],
            "rate": result["steps"] / max(result["train_seconds"], 1e-9)}


def reached(s: dict[str, float], unit: str) -> str:
    if s["seconds"] == float("inf"):
        return f"not reached in {s['last_seconds']:.1f} s / {s['last_step']:,.0f} {unit}"
    return f"{s['seconds']:.2f} s / {s['steps']:,.0f} {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="bc,gail,airl", help="comma-separated subset of bc,gail,airl")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--budget-s", type=float, default=60.0, help="training-clock cap per run (stops at the next evaluation)")
    parser.add_argument("--busy", action="store_true", help="keep one core busy with another process (busy_core.spin) throughout")
    parser.add_argument("--quick", action="store_true", help="tiny step caps: checks that both sides run, not what they reach")
    parser.add_argument("--imitation-python", default=str(ROOT / "benchmarks" / ".venv-imitation" / "bin" / "python"))
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {','.join(METHODS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    if not Path(args.imitation_python).exists():
        parser.error(f"{args.imitation_python} does not exist: make the venv with the recipe in this script's docstring")
    try:
        import seals  # noqa: F401 - registers seals/CartPole-v0 with gymnasium
    except ImportError:
        parser.error("seals is not installed in this environment: .venv/bin/python -m pip install -c constraints.txt seals")
    import torch

    # seals' CartPole declares float64 bounds for a float32 Box: gymnasium warns at every make.
    warnings.filterwarnings("ignore", message=".*precision lowered by casting.*")
    torch.set_num_threads(1)
    os.environ.setdefault("DAEDALUS_PROGRESS", "plain")
    os.environ.setdefault("DAEDALUS_PLOTS", "0")
    shared = settings(args.budget_s, args.quick)
    rows: dict[tuple[str, str], list[dict[str, float]]] = {}
    busy = None
    if args.busy:
        import multiprocessing

        from busy_core import spin  # benchmarks/busy_core.py (this script's folder is on sys.path)

        busy = multiprocessing.Process(target=spin, daemon=True)
        busy.start()
    try:
        _run_all(args, methods, seeds, shared, rows)
    finally:
        if busy is not None:
            busy.terminate()
    _print_table(methods, rows)


def _run_all(args: argparse.Namespace, methods: list[str], seeds: list[int], shared: dict[str, Any], rows: dict[tuple[str, str], list[dict[str, float]]]) -> None:
    """Every seed, method by method, imitation then Daedalus; fills ``rows``."""
    import torch

    versions: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder, npz, info = make_demonstrations(work)
        settings_file = work / "settings.json"
        settings_file.write_text(json.dumps(shared))
        print(f"{ENV_ID}; expert (Daedalus PPO, {EXPERT['total_steps']:,} steps, {info['expert_seconds']:.1f} s) final return "
              f"{info['expert_final_return']:.1f}; {info['episodes']} demonstration episodes, {info['steps']:,} steps, mean return "
              f"{info['mean_return']:.1f}; seeds {seeds}; budget {args.budget_s:g} s per run{' (quick)' if args.quick else ''}; "
              f"torch {torch.__version__}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
              f"{'; one core kept busy' if args.busy else ''}", flush=True)
        for seed in seeds:
            for method in methods:
                unit = "gradient steps" if method == "bc" else "env steps"
                imitation = run_imitation(args.imitation_python, method, seed, npz, settings_file)
                versions = imitation["versions"]
                ours = run_daedalus(method, seed, folder, shared[method], args.budget_s, work / "runs")
                for side, result in (("imitation", imitation), ("daedalus", ours)):
                    s = summary(result)
                    rows.setdefault((method, side), []).append(s)
                    print(f"  seed {seed} {method:4s} {side:9s} 475: {reached(s, unit):42s} final {s['final']:6.1f}  "
                          f"{s['rate']:8,.0f} {unit}/s over {s['last_step']:,.0f}", flush=True)
    print(f"\nimitation side: {', '.join(f'{k} {v}' for k, v in versions.items())}")


def _print_table(methods: list[str], rows: dict[tuple[str, str], list[dict[str, float]]]) -> None:
    print("\n| method | imitation: time / steps to 475 | Daedalus: time / steps to 475 | speed-up | final return imitation / Daedalus | steps/s imitation / Daedalus |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for method in methods:
        if (method, "daedalus") not in rows:
            continue
        theirs, ours = rows[(method, "imitation")], rows[(method, "daedalus")]

        def med(side: list[dict[str, float]], key: str) -> float:
            return median([s[key] for s in side])

        cells = []
        for side in (theirs, ours):
            hits = sum(s["seconds"] != float("inf") for s in side)
            if hits * 2 > len(side):  # the median is a hit
                cells.append(f"{med(side, 'seconds'):.2f} s / {med(side, 'steps'):,.0f} ({hits}/{len(side)} seeds)")
            else:
                cells.append(f"not reached ({hits}/{len(side)} seeds; {med(side, 'last_seconds'):.0f} s / {med(side, 'last_step'):,.0f})")
        t_theirs, t_ours = med(theirs, "seconds"), med(ours, "seconds")
        if t_ours == float("inf"):
            speedup = "-"
        elif t_theirs == float("inf"):
            speedup = f"> x{med(theirs, 'last_seconds') / t_ours:.1f}"
        else:
            speedup = f"x{t_theirs / t_ours:.1f}"
        per_seed = ", ".join(f"{a['final']:.0f}/{b['final']:.0f}" for a, b in zip(theirs, ours, strict=True))
        print(f"| {method} | {cells[0]} | {cells[1]} | {speedup} | {per_seed} | {med(theirs, 'rate'):,.0f} / {med(ours, 'rate'):,.0f} |")
    print("\nTimes: training clock (evaluation excluded) at the first 20-episode deterministic evaluation >= 475, medians over "
          "seeds; BC steps are gradient steps, GAIL/AIRL steps env steps. Speed-up: imitation / Daedalus median time.")


if __name__ == "__main__":
    main()
