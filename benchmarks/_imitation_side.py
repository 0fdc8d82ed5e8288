"""The imitation side of ``imitation_vs_daedalus.py``: one BC, GAIL or AIRL run of the ``imitation`` library.

Runs with ``benchmarks/.venv-imitation/bin/python`` (imitation 1.0.1, gymnasium 0.29.1,
stable-baselines3 2.2.1, seals; the recipe is in ``imitation_vs_daedalus.py``'s docstring), never
with Daedalus's environment, and imports nothing from Daedalus. The main script starts it once per
method and seed::

    .venv-imitation/bin/python _imitation_side.py --method gail --seed 0 --demos demos.npz \\
        --settings settings.json --out result.json

``--settings`` is the JSON the main script writes (its ``settings()``: the one place the shared
hyperparameters and the evaluation grid live). ``--out`` receives the evaluations (step, mean
return, training seconds), the steps and training seconds at the end, and the library versions.

The clock runs while imitation trains (``BC.train`` / ``AdversarialTrainer.train``) and is paused
while the policy plays the 20 evaluation episodes (episode ``i`` reset with ``seed + 10_000 + i``,
deterministic actions, as Daedalus's periodic evaluation does) and while checking the budget.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # imitation's progress bars: not part of what is measured


class Stop(Exception):  # noqa: N818 - a signal, not an error
    """Raised from a round callback to end training (threshold reached or budget spent)."""


def load_trajectories(path: str) -> list[Any]:
    """imitation ``TrajectoryWithRew`` objects from the npz the main script wrote (imitation's old layout)."""
    import numpy as np
    from imitation.data.types import TrajectoryWithRew

    with np.load(path, allow_pickle=False) as data:
        obs, acts, rews = data["obs"], data["acts"], data["rews"].astype(np.float32)
        terminal, indices = data["terminal"].astype(bool), data["indices"].astype(np.int64)
    starts = np.concatenate([[0], indices])
    ends = np.concatenate([indices, [len(acts)]])
    return [
        # trajectory k has one more observation than actions: its observations start k rows later
        TrajectoryWithRew(obs=obs[start + k : end + k + 1], acts=acts[start:end], infos=None, terminal=bool(terminal[k]), rews=rews[start:end])
        for k, (start, end) in enumerate(zip(starts, ends, strict=True))
    ]


class Evaluator:
    """20 deterministic episodes, episode ``i`` reset with ``seed + i``, all copies stepped in lockstep."""

    def __init__(self, env_id: str, episodes: int, seed: int) -> None:
        import gymnasium as gym

        self.envs = [gym.make(env_id) for _ in range(episodes)]
        self.seed = seed

    def __call__(self, policy: Any) -> float:
        import numpy as np

        obs = np.stack([env.reset(seed=self.seed + i)[0] for i, env in enumerate(self.envs)])
        totals = np.zeros(len(self.envs))
        active = np.ones(len(self.envs), dtype=bool)
        while active.any():
            actions, _ = policy.predict(obs, deterministic=True)
            for i in np.flatnonzero(active):
                next_obs, reward, terminated, truncated, _ = self.envs[i].step(actions[i])
                totals[i] += float(reward)
                obs[i] = next_obs
                active[i] = not (terminated or truncated)
        return float(totals.mean())


class Clock:
    """Training seconds: wall time since ``start`` minus the paused intervals."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.paused = 0.0

    def seconds(self) -> float:
        return time.perf_counter() - self.start - self.paused


def run(method: str, seed: int, demos: str, settings: dict[str, Any]) -> dict[str, Any]:
    import imitation
    import numpy as np
    import seals  # noqa: F401 - registers seals/CartPole-v0
    import stable_baselines3
    import torch
    from imitation.util import logger as imit_logger

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    env_id, threshold, budget_s = settings["env_id"], settings["threshold"], settings["budget_s"]
    spec = settings[method]
    trajectories = load_trajectories(demos)
    evaluate = Evaluator(env_id, settings["eval_episodes"], seed + settings["eval_seed_offset"])
    evaluations: list[dict[str, float]] = []
    logger = imit_logger.configure(folder=None, format_strs=[])
    rng = np.random.default_rng(seed)
    clock: Clock | None = None

    def checkpoint(step: int, policy: Any) -> None:
        """Evaluate with the clock paused; Stop at the threshold, the budget or the step cap."""
        assert clock is not None
        paused_at = time.perf_counter()
        train_seconds = clock.seconds()
        mean = evaluate(policy)
        evaluations.append({"step": step, "mean_return": mean, "train_seconds": train_seconds})
        clock.paused += time.perf_counter() - paused_at
        if mean >= threshold or train_seconds >= budget_s or step >= spec["max_steps"]:
            raise Stop

    if method == "bc":
        from imitation.algorithms import bc
        from stable_baselines3.common.policies import ActorCriticPolicy

        probe = __import__("gymnasium").make(env_id)
        policy = ActorCriticPolicy(
            probe.observation_space, probe.action_space, lr_schedule=lambda _: spec["learning_rate"],
            net_arch={"pi": spec["hidden_sizes"], "vf": spec["hidden_sizes"]}, activation_fn=torch.nn.Tanh,
        )
        trainer = bc.BC(
            observation_space=probe.observation_space, action_space=probe.action_space, rng=rng, policy=policy,
            demonstrations=trajectories, batch_size=spec["batch_size"], optimizer_kwargs={"lr": spec["learning_rate"]},
            ent_weight=spec["ent_weight"], l2_weight=spec["l2_weight"], device="cpu", custom_logger=logger,
        )
        steps = 0
        clock = Clock()
        with contextlib.suppress(Stop):
            while True:
                trainer.train(n_batches=spec["eval_every"], progress_bar=False, log_interval=10**9)
                steps += spec["eval_every"]
                checkpoint(steps, trainer.policy)
        steps_done = steps
    else:
        from imitation.algorithms.adversarial.airl import AIRL
        from imitation.algorithms.adversarial.gail import GAIL
        from imitation.rewards.reward_nets import BasicRewardNet, BasicShapedRewardNet
        from imitation.util.util import make_vec_env
        from stable_baselines3 import PPO

        venv = make_vec_env(env_id, rng=rng, n_envs=spec["num_envs"])
        rollout = spec["num_envs"] * spec["num_steps"]
        gen_algo = PPO(
            "MlpPolicy", venv, n_steps=spec["num_steps"], batch_size=rollout // spec["num_minibatches"], n_epochs=spec["update_epochs"],
            learning_rate=spec["learning_rate"], gamma=spec["gamma"], gae_lambda=spec["gae_lambda"], clip_range=spec["clip_coef"],
            ent_coef=spec["ent_coef"], vf_coef=spec["vf_coef"], max_grad_norm=spec["max_grad_norm"],
            policy_kwargs={"net_arch": {"pi": spec["hidden_sizes"], "vf": spec["hidden_sizes"]}, "activation_fn": torch.nn.Tanh},
            seed=seed, device="cpu", verbose=0,
        )
        hidden, activation = tuple(spec["disc_hidden_sizes"]), torch.nn.Tanh
        common = {
            "demonstrations": trajectories, "demo_batch_size": spec["disc_batch_size"], "venv": venv, "gen_algo": gen_algo,
            "n_disc_updates_per_round": spec["disc_updates_per_round"], "custom_logger": logger,
            "disc_opt_kwargs": {"lr": spec["disc_learning_rate"], "eps": spec["disc_adam_eps"]}, "allow_variable_horizon": False,
        }
        if method == "gail":
            reward_net = BasicRewardNet(venv.observation_space, venv.action_space, hid_sizes=hidden, activation=activation)
            trainer: Any = GAIL(reward_net=reward_net, **common)
        else:
            reward_net = BasicShapedRewardNet(
                venv.observation_space, venv.action_space, reward_hid_sizes=hidden, potential_hid_sizes=hidden,
                use_state=True, use_action=not spec["state_only"], use_next_state=False, use_done=False,
                discount_factor=spec["gamma"], activation=activation,
            )
            trainer = AIRL(reward_net=reward_net, **common)

        def on_round(round_index: int) -> None:
            step = (round_index + 1) * rollout
            if step % spec["eval_every"] == 0 or step + rollout > spec["max_steps"]:
                checkpoint(step, gen_algo.policy)

        clock = Clock()
        with contextlib.suppress(Stop):
            trainer.train(total_timesteps=spec["max_steps"], callback=on_round)
        steps_done = int(gen_algo.num_timesteps)
    assert clock is not None
    return {
        "evaluations": evaluations, "steps": steps_done, "train_seconds": evaluations[-1]["train_seconds"] if evaluations else clock.seconds(),
        "versions": {"imitation": imitation.__version__, "stable_baselines3": stable_baselines3.__version__,
                     "gymnasium": __import__("gymnasium").__version__, "torch": torch.__version__, "numpy": np.__version__},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=["bc", "gail", "airl"], required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--demos", required=True, help="imitation-layout npz (obs, acts, rews, terminal, indices)")
    parser.add_argument("--settings", required=True, help="JSON written by imitation_vs_daedalus.py")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    settings = json.loads(Path(args.settings).read_text())
    Path(args.out).write_text(json.dumps(run(args.method, args.seed, args.demos, settings)))


if __name__ == "__main__":
    main()
