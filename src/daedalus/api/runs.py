"""Saved runs: load one (within the trust rules), list and show them, evaluate and replay them.

Also what works on an agent without a run: :func:`evaluate_profile` (a stepwise agent run
without memorize/update), :func:`describe_agent` and :func:`write_default_profile`.
:func:`evaluate_target` is ``daedalus evaluate``: a run, or a stepwise agent's profile file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from daedalus.api.resolve import (
    LoadedRun,
    load_run,
    make_agent,
    restores_torch_threads,
    validate,
)
from daedalus.api.session import DEFAULT_RUNS_DIR
from daedalus.config import describe_config, load_profiles
from daedalus.errors import DaedalusError, ProfileError, RunError
from daedalus.registry import get_agent
from daedalus.runs.store import RunFolder, list_runs, resolve_run
from daedalus.types import TrainContext

# --------------------------------------------------------------------------- runs


def runs_table(runs_dir: str | Path = DEFAULT_RUNS_DIR, **filters: Any) -> list[dict[str, Any]]:
    """Run records for ``daedalus runs list`` (dead ``running`` runs become ``crashed``)."""
    return list_runs(Path(runs_dir), **filters)


def show_run(run: str | Path, runs_dir: str | Path | None = None) -> dict[str, Any]:
    """run.json of one run plus its checkpoints, files and problems.

    A run folder whose run.json cannot be read still shows its path, files and a
    ``problems`` list saying what is wrong (never a traceback).
    """
    folder = resolve_run(run, Path(runs_dir) if runs_dir else None)
    record = folder.index_record()  # validated; status "corrupt" when run.json is damaged
    try:
        data = folder.read()
    except RunError:
        data = {}
    data.update(run_id=folder.run_id, path=record["path"], status=record["status"])
    if "error" in record:
        data["error"] = record["error"]
    data["problems"] = folder.describe_problems()
    data["checkpoints"] = [
        {"name": c.name, "step": c.step, "format": c.format} for c in folder.checkpoints()
    ]
    data["files"] = sorted(p.name for p in folder.path.iterdir() if not p.name.startswith("."))
    return data


# --------------------------------------------------------------------------- describe


def describe_agent(agent_id: str) -> dict[str, Any]:
    """An agent's id, description and, for typed configs, every field (name, type, default, help)."""
    spec = get_agent(agent_id)
    if spec.config_class is not None:
        fields = [
            {"name": f.name, "type": f.type_name, "default": f.default, "help": f.help}
            for f in describe_config(spec.config_class)
        ]
    else:
        fields = [
            {"name": k, "type": type(v).__name__ if v is not None else "any", "default": v, "help": ""}
            for k, v in (spec.default_config or {}).items()
        ]
    return {"agent_id": spec.agent_id, "description": spec.description, "fields": fields}


# --------------------------------------------------------------------------- evaluation


def evaluate_target(
    target: str | Path,
    profile_id: str | None = None,
    *,
    checkpoint: str | None = None,
    episodes: int | None = None,
    deterministic: bool = True,
    seed: int = 0,
    runs_dir: str | Path | None = None,
    trust_code: bool = False,
    policies: Sequence[str] = (),
) -> tuple[Any, Path | None]:
    """``daedalus evaluate``: evaluate a saved run, or a stepwise agent's profile file.

    ``target`` is a run folder, run id or unique id prefix (:func:`evaluate_run`, ``episodes``
    defaults to 10), or a ``.yaml``/``.yml`` file holding a stepwise agent's profile
    (:func:`evaluate_profile`, with ``profile_id`` naming the profile; ``checkpoint``,
    ``deterministic``, ``runs_dir`` and ``trust_code`` do not apply). Returns
    ``(EvalResult, path of the run's eval.json)``, the path being None for a profile file.
    """
    if Path(target).is_file() and Path(target).suffix in (".yaml", ".yml"):
        return evaluate_profile(target, profile_id, episodes, seed=seed), None
    if profile_id is not None:
        raise DaedalusError(
            f"a profile id ('{profile_id}') only goes with a profile file, and '{target}' is not one. "
            "Leave the profile id out to evaluate a run."
        )
    return evaluate_run(
        target, checkpoint=checkpoint, episodes=episodes or 10, deterministic=deterministic, seed=seed,
        runs_dir=runs_dir, trust_code=trust_code, policies=policies,
    )


@restores_torch_threads
def evaluate_run(
    run: str | Path,
    *,
    checkpoint: str | None = None,
    episodes: int = 10,
    deterministic: bool = True,
    seed: int | None = 0,
    runs_dir: str | Path | None = None,
    trust_code: bool = False,
    policies: Sequence[str] = (),
) -> tuple[Any, Path]:
    """Evaluate a saved run's agent; the result is added to the run's ``eval.json``.

    Returns ``(EvalResult, path of eval.json)``. ``trust_code``: see :func:`load_run`.
    ``policies`` (multi-agent runs; cross-play) replace some of the run's policies for this
    evaluation: ``NAME=random`` (uniformly random actions) or
    ``NAME=RUN[:POLICY]`` (that policy of another multi-agent run; default: the same name, or its
    only policy).
    """
    from daedalus.api.session import evaluate_agent
    from daedalus.runs.io import read_json

    loaded = load_run(run, checkpoint=checkpoint, runs_dir=runs_dir, trust_code=trust_code)
    overrides = _policy_overrides(loaded, policies, runs_dir, trust_code, seed)
    result = evaluate_agent(loaded.resolved, loaded.agent, episodes, deterministic, seed, overrides)
    eval_file = loaded.path / "eval.json"
    history: list[Any] = []
    if eval_file.is_file():
        try:
            previous = read_json(eval_file)
            history = previous.get("history", []) if isinstance(previous, dict) else []
        except ValueError:
            history = []
    entry = {**result.to_dict(), "checkpoint": loaded.checkpoint, "evaluated_at": time.time()}
    if policies:
        entry["policy_overrides"] = list(policies)
    history.append(entry)
    RunFolder(loaded.path).write_json("eval.json", {"latest": entry, "history": history})
    return result, eval_file


def _policy_overrides(
    loaded: LoadedRun, specs: Sequence[str], runs_dir: str | Path | None, trust_code: bool, seed: int | None
) -> dict[str, Any]:
    """``NAME=random`` / ``NAME=RUN[:POLICY]`` -> the collection policies that replace the run's."""
    if not specs:
        return {}
    groups = loaded.resolved.groups
    if groups is None:
        raise DaedalusError(f"--policy is for multi-agent runs; {loaded.path} trains one agent.")
    from daedalus.rollout.policies import RandomPolicy

    out: dict[str, Any] = {}
    for spec in specs:
        name, _, source = spec.partition("=")
        if name not in groups or not source:
            raise DaedalusError(
                f"--policy '{spec}': write NAME=random or NAME=RUN[:POLICY] with NAME one of the run's policies "
                f"({', '.join(groups)})."
            )
        observation_space, action_space = loaded.resolved.group_spaces[name]
        if source == "random":
            out[name] = RandomPolicy(action_space, seed=seed)
            continue
        run_ref, _, other = source.rpartition(":") if ":" in source and not Path(source).exists() else (source, "", "")
        other_run = load_run(run_ref, runs_dir=runs_dir, trust_code=trust_code)
        other_policies = getattr(other_run.agent, "policies", None)
        if not isinstance(other_policies, dict):
            raise DaedalusError(f"--policy '{spec}': {other_run.path} is not a multi-agent run.")
        chosen = other or (name if name in other_policies else next(iter(other_policies)) if len(other_policies) == 1 else "")
        if chosen not in other_policies:
            raise DaedalusError(f"--policy '{spec}': {other_run.path} has policies {', '.join(other_policies)}; name one as RUN:POLICY.")
        their_obs, their_act = other_run.resolved.group_spaces[chosen]
        if their_obs != observation_space or their_act != action_space:
            raise DaedalusError(
                f"--policy '{spec}': policy '{chosen}' of {other_run.path} acts in {their_obs} -> {their_act}, "
                f"but '{name}' here needs {observation_space} -> {action_space}."
            )
        from daedalus.algos.multi_policy import evaluation_policy

        out[name] = evaluation_policy(other_policies[chosen])
    return out


@restores_torch_threads
def replay(
    run: str | Path,
    video: str | Path | None = None,
    *,
    checkpoint: str | None = None,
    episodes: int = 1,
    deterministic: bool = True,
    seed: int | None = 0,
    runs_dir: str | Path | None = None,
    trust_code: bool = False,
) -> tuple[Any, Path]:
    """Record ``episodes`` episodes of a saved run's agent to a video (default ``<run>/videos/``).

    ``trust_code``: see :func:`load_run`.
    """
    from daedalus.evaluation import record_video

    # Render off-screen: pygame-based envs otherwise look for a display.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    loaded = load_run(run, checkpoint=checkpoint, runs_dir=runs_dir, trust_code=trust_code)
    target = Path(video) if video else loaded.path / "videos" / f"{loaded.checkpoint}-seed{seed}.mp4"
    target.parent.mkdir(parents=True, exist_ok=True)
    make_env = loaded.resolved.env_factory(render_mode="rgb_array")
    if loaded.resolved.groups is not None:  # a multi-agent run: every policy plays its agents
        from daedalus.algos.multi_policy import evaluation_policy
        from daedalus.evaluation import record_multiagent_video

        agent = loaded.agent
        policies = {name: evaluation_policy(policy) for name, policy in agent.policies.items()}
        result = record_multiagent_video(
            make_env, agent.groups, policies, target, n_episodes=episodes, deterministic=deterministic, seed=seed,
            one_hot=agent.one_hot, critics=agent.critics,
        )
        return result, target
    result = record_video(loaded.agent, make_env, target, n_episodes=episodes, deterministic=deterministic, seed=seed)
    return result, target


def evaluate_profile(
    path: str | Path,
    profile_id: str | None = None,
    episodes: int | None = None,
    *,
    seed: int | None = None,
) -> Any:
    """Run a stepwise profile's agent without memorize/update (Gym Loop's ``evaluate``).

    The agent is built from the profile as written (a fresh agent: point one of its
    parameters at saved weights to evaluate them; to evaluate a trained run use
    ``daedalus evaluate RUN``). ``episodes`` defaults to the loop's ``eval_episodes``;
    episode ``i`` is reset with seed ``seed + i`` (default: the profile's seed).
    """
    from daedalus.agents.stepwise import NoProgress, is_stepwise, parse_loop_section
    from daedalus.tracking.metrics import MetricLogger

    profiles = load_profiles(path, [profile_id] if profile_id else None)
    if len(profiles) != 1:
        ids = ", ".join(p.profile_id for p in profiles)
        raise ProfileError(f"{path} holds several profiles ({ids}); name the one to evaluate.")
    profile = profiles[0]
    resolved = validate(profile)
    if not is_stepwise(resolved.spec):
        raise profile.fail(
            ("agent_id",),
            f"agent '{profile.agent_id}' is not a stepwise agent; evaluating a profile runs a "
            "stepwise agent without memorize/update",
            "Train it ('daedalus train FILE') and evaluate the run ('daedalus evaluate RUN').",
        )
    agent = make_agent(resolved)
    loop_cls, params, _ = parse_loop_section(profile.loop, profile.fail, profile.base_dir)
    context = TrainContext(
        profile_id=profile.profile_id,
        agent_id=profile.agent_id,
        env_id=profile.env_id,
        env_args=dict(profile.env_args),
        num_envs=1,
        seed=profile.seed,
        vectorization=profile.vectorization,
        device=profile.device,
        config=resolved.config,
        make_env=resolved.make_env,
        logger=MetricLogger([]),
        progress=NoProgress(),
        checkpoint=lambda *args: None,
        loop=profile.loop,
        extras={
            "env_factory_with_render_mode": lambda mode: resolved.env_factory(render_mode=mode),
            "eval_seed": profile.seed if seed is None else seed,
        },
    )
    loop = loop_cls(agent, resolved.make_env, context, {}, None, **params)
    return loop.evaluate(episodes)

