"""Loops that run stepwise agents (Gym Loop's ``DefaultLoop`` and ``BaseLoop``).

A loop owns the environment and decides when the agent acts, memorizes, updates, is
checkpointed and is evaluated. :class:`DefaultLoop` is used unless a profile names another
one; its options are the typed :class:`LoopConfig`, read from the profile's ``loop:`` section::

    loop: {max_episodes: 500, eval_episodes: 20}                 # default loop, flat
    loop: {parameters: {max_episodes: 500}}                      # default loop, Gym Loop style
    loop: {class: my_pkg.loops:MyLoop, parameters: {foo: 1}}     # your own BaseLoop subclass

Nothing here imports NumPy, Gymnasium or torch at module level.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from daedalus.hooks import CheckpointSaved, EvalEnd, RolloutEnd
from daedalus.params import AT_LEAST_ONE, NONNEGATIVE, POSITIVE, check_fields, param

if TYPE_CHECKING:
    from daedalus.evaluation import EvalResult
    from daedalus.types import EnvFactory, SaveCallback, TrainContext

__all__ = ["BaseLoop", "DefaultLoop", "LoopConfig", "call_memorize", "recorded_episode"]


@dataclass
class LoopConfig:
    """Options of the default loop (the profile's ``loop:`` section); Gym Loop's names."""

    max_episodes: int = param(
        100, "Episodes to run in total, random warm-up episodes included.", AT_LEAST_ONE
    )
    max_episode_len: int | None = param(
        5000,
        "Cut an episode after this many steps; the cut is a truncation. "
        "null: only the env's own time limit.",
        AT_LEAST_ONE,
    )
    episodes_per_checkpoint: int | None = param(
        100, "Save a checkpoint every N episodes. null: only at the end.", AT_LEAST_ONE
    )
    time_per_checkpoint: float | None = param(
        None,
        "Also save a checkpoint when this many seconds have passed since the last one "
        "(checked at episode ends). null: off.",
        POSITIVE,
    )
    eval_episodes: int = param(
        10,
        "Episodes run without memorize/update after training; their mean return is the "
        "run's final return. Also what 'daedalus evaluate PROFILE' runs. 0: none.",
        NONNEGATIVE,
    )
    random_episodes: int = param(
        0,
        "Warm-up: the first N episodes take random actions (memorize is called, update is not).",
        NONNEGATIVE,
    )
    render: bool = param(False, "Watch training: the env is created with render_mode='human'.")
    record: bool = param(
        False,
        "Record videos of training episodes 0, 1, 8, 27, 64, ... (cubes, then every "
        "1000th) to <run>/videos/ (needs daedalus[video]).",
    )
    logdir: str | None = param(
        None,
        "Folder for the loop's episodes.csv (default: the run folder); when set, "
        "TensorBoard events of the loop go to <logdir>/tb too.",
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.random_episodes > self.max_episodes:
            raise ValueError(
                f"random_episodes: {self.random_episodes} is more than max_episodes "
                f"({self.max_episodes}); random_episodes must be between 0 and max_episodes. "
                "Lower random_episodes or raise max_episodes"
            )
        if self.render and self.record:
            raise ValueError(
                "record: render and record cannot both be true: an env has one render_mode "
                "('human' to watch, 'rgb_array' to record). Turn one of them off"
            )


# --------------------------------------------------------------------------- base class


class BaseLoop:
    """Base class of loops (Gym Loop's ``BaseLoop``): subclass it and implement :meth:`train`.

    A profile selects a loop with ``loop: {class: pkg.mod:MyLoop, parameters: {...}}``.
    Parameters are declared like an agent's: :meth:`get_default_parameters` returns each
    one with its default (unknown keys in the profile are errors, missing ones are filled
    in), or ``config_class`` names a dataclass whose fields are type-checked.

    Attributes available to :meth:`train`:
        agent: The stepwise agent (a :class:`~daedalus.agents.stepwise.StepAgent`).
        env_factory: ``env_factory(seed)`` builds a fresh env with the profile's wrappers.
        context: The :class:`~daedalus.types.TrainContext` (``logger``, ``progress``,
            ``seed``, ``run_dir``, ...).
        artifacts: Saved to ``artifacts.json``. Put ``evaluations`` (a list of dicts with
            ``mean_return``) there and the run's best/final return are taken from it.
        parameters: Declared defaults updated by the profile.
        global_step: Env steps so far (checkpoints are labelled with it).
    """

    #: Optional dataclass describing the parameters (typed, with help texts).
    config_class: ClassVar[type | None] = None

    @classmethod
    def get_default_parameters(cls) -> dict[str, Any]:
        """Every parameter the loop takes, with its default."""
        if cls.config_class is not None:
            from daedalus.config import config_defaults

            return config_defaults(cls.config_class)
        return {}

    def __init__(
        self,
        agent: Any,
        env_factory: EnvFactory,
        context: TrainContext,
        artifacts: dict[str, Any] | None = None,
        save_callback: SaveCallback | None = None,
        **parameters: Any,
    ) -> None:
        self.agent = agent
        self.env_factory = env_factory
        self.context = context
        self.artifacts: dict[str, Any] = artifacts if artifacts is not None else {}
        self.save_callback = save_callback
        self.parameters: dict[str, Any] = {**self.get_default_parameters(), **parameters}
        # A resumed run (daedalus resume) continues the counters of the checkpoint it starts from.
        resumed = context.extras.get("loop_state") or {} if context is not None else {}
        self.global_step = int(resumed.get("global_step", 0))
        #: Episodes finished (the next one to run has this index).
        self.episodes_done = int(resumed.get("episode", 0))

    def train(self) -> None:
        """Run training to the end (act, memorize, update, checkpoints, logs)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement train()")

    def evaluate(self, episodes: int | None = None) -> EvalResult:
        """Run ``episodes`` episodes without memorize/update; mean ± std of their returns.

        The agent's ``training`` flag is false meanwhile, so it can act greedily.
        """
        from daedalus.evaluation import evaluate

        n_episodes = episodes or int(self.parameters.get("eval_episodes") or 10)
        self.agent.training = False
        return evaluate(
            self.agent, self.env_factory, n_episodes=n_episodes, seed=_eval_seed(self.context)
        )

    def checkpoint(self, name: str) -> None:
        """Save the agent as ``checkpoints/<name>`` (a no-op outside a run) and tell the hooks."""
        if self.save_callback is not None:
            # What a resume needs besides the agent's own save(): where the loop stood.
            self.context.extras["loop_state"] = self.loop_state()
            self.save_callback(self.agent, self.artifacts, self.global_step, name)
            if self.context.hooks:
                self.context.hooks.emit("on_checkpoint", CheckpointSaved(self.global_step, name))

    def loop_state(self) -> dict[str, Any]:
        """Where the loop stands, as JSON: what a resume restores besides the agent.

        Episodes done and env steps; subclasses may add entries (the default loop adds its env's
        random generator states, so that a resumed run plays the same episodes).
        """
        return {"episode": self.episodes_done, "global_step": self.global_step}

    def make_env(self, render_mode: str | None = None, seed: int | None = None) -> Any:
        """A fresh env; with ``render_mode``, one built with that render mode (same wrappers)."""
        if render_mode is None:
            return self.env_factory(seed)
        return env_factory_with_render_mode(self.context, render_mode)(seed)


def _eval_seed(context: TrainContext) -> int | None:
    """``context.extras["eval_seed"]`` when set, else the run's seed + 1,000,000.

    Evaluation episodes use seeds apart from training's, so they are not replays of it.
    """
    if "eval_seed" in context.extras:
        return context.extras["eval_seed"]
    return None if context.seed is None else context.seed + 1_000_000


def env_factory_with_render_mode(context: TrainContext, render_mode: str) -> EnvFactory:
    """``make_env(seed)`` like the profile's, but creating the env with ``render_mode``.

    The run's resolved ``profile.yaml`` gives the env and its wrappers; a context can also
    carry a ready factory builder as ``context.extras["env_factory_with_render_mode"]``.
    """
    builder = context.extras.get("env_factory_with_render_mode")
    if builder is not None:
        return builder(render_mode)
    from daedalus.config import load_profiles
    from daedalus.envs.make import env_factory_for

    profile_file = context.run_dir / "profile.yaml" if context.run_dir is not None else None
    if profile_file is not None and profile_file.is_file():
        (profile,) = load_profiles(profile_file)
        return env_factory_for(profile, render_mode=render_mode)
    from daedalus.config import profile_from_dict

    profile = profile_from_dict(
        context.profile_id,
        {"agent_id": context.agent_id, "env_id": context.env_id, "env_args": context.env_args},
    )
    return env_factory_for(profile, render_mode=render_mode)


# --------------------------------------------------------------------------- agent calls


def accepts_flags(memorize: Callable[..., Any]) -> bool:
    """Whether ``memorize`` takes ``terminated=`` and ``truncated=`` keywords."""
    try:
        params = inspect.signature(memorize).parameters
    except (TypeError, ValueError):
        return False
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return True
    return "terminated" in params and "truncated" in params


def call_memorize(
    agent: Any,
    last_ob: Any,
    action: Any,
    reward: float,
    terminated: bool,
    truncated: bool,
    ob: Any,
    with_flags: bool | None = None,
) -> None:
    """Call ``agent.memorize`` the Gym Loop way, keeping ``terminated`` and ``truncated`` apart.

    ``agent.last_terminated`` / ``agent.last_truncated`` are set first (every agent can read
    them); ``memorize(last_ob, action, reward, done, ob)`` gets ``done = terminated or
    truncated``, plus ``terminated=`` and ``truncated=`` keywords when its signature accepts
    them. ``with_flags`` caches that check.
    """
    agent.last_terminated = bool(terminated)
    agent.last_truncated = bool(truncated)
    done = bool(terminated or truncated)
    if with_flags is None:
        with_flags = accepts_flags(agent.memorize)
    if with_flags:
        agent.memorize(
            last_ob, action, reward, done, ob, terminated=terminated, truncated=truncated
        )
    else:
        agent.memorize(last_ob, action, reward, done, ob)


def recorded_episode(episode: int) -> bool:
    """Gymnasium's capped cubic video schedule: episodes 0, 1, 8, 27, ..., 729, then each 1000th."""
    if episode < 1000:
        return round(episode ** (1.0 / 3)) ** 3 == episode
    return episode % 1000 == 0


# --------------------------------------------------------------------------- default loop


class DefaultLoop(BaseLoop):
    """Gym Loop's default loop: episodes of act → env.step → memorize → update.

    Per episode it logs ``episode_return`` and ``episode_length`` (plus the agent's own
    ``metrics(episode_num)`` when it has that method, and the env / act / learn time split)
    through the run's logger, updates the progress display and appends a row to
    ``episodes.csv``. Checkpoints follow ``episodes_per_checkpoint`` and
    ``time_per_checkpoint``; the run machinery saves ``final`` after :meth:`train`.
    """

    config_class: ClassVar[type | None] = LoopConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = LoopConfig(**self.parameters)

    # ------------------------------------------------------------------ training

    def loop_state(self) -> dict[str, Any]:
        """The base loop state plus the env's and its action space's random generator states."""
        state = super().loop_state()
        source = getattr(self, "_source", None)
        if source is not None:
            state["env_rng"] = _rng_states(source.env)
        return state

    def train(self) -> None:
        """Run ``max_episodes`` episodes, then ``eval_episodes`` evaluation episodes."""
        cfg = self.config
        agent = self.agent
        render_mode = "human" if cfg.render else "rgb_array" if cfg.record else None
        from daedalus.rollout.source import (
            SingleEnv,  # not at import: `daedalus.BaseLoop` stays light
        )

        source = self._source = SingleEnv(self.make_env(render_mode, self.context.seed))
        resumed = self.context.extras.get("loop_state") or {}
        if resumed.get("env_rng"):
            _set_rng_states(source.env, resumed["env_rng"])
        log = _EpisodeLog(self._log_dir(), tensorboard=cfg.logdir is not None)
        with_flags = accepts_flags(agent.memorize)
        returns: list[float] = []
        lengths: list[int] = []
        env_s = act_s = learn_s = 0.0
        last_checkpoint = time.perf_counter()
        started = last_checkpoint
        start_step = self.global_step  # steps/s counts this session's steps (a resume starts later)
        try:
            for episode in range(self.episodes_done, cfg.max_episodes):
                warm_up = episode < cfg.random_episodes
                agent.training = True
                agent.episode_num = episode
                ob, _ = source.reset()
                frames = _Frames(source) if cfg.record and recorded_episode(episode) else None
                episode_return, length = 0.0, 0
                terminated = truncated = False
                while not (terminated or truncated):
                    t0 = time.perf_counter()
                    action = source.action_space.sample() if warm_up else agent.act(ob, episode)
                    t1 = time.perf_counter()
                    next_ob, reward, terminated, truncated, _ = source.step(action)
                    t2 = time.perf_counter()
                    length += 1
                    if cfg.max_episode_len is not None and length >= cfg.max_episode_len:
                        truncated = truncated or not terminated
                    if frames is not None:
                        frames.add()
                    call_memorize(
                        agent,
                        ob,
                        action,
                        reward,
                        terminated,
                        truncated,
                        next_ob,
                        with_flags,
                    )
                    if not warm_up:
                        agent.update(episode)
                    t3 = time.perf_counter()
                    env_s += t2 - t1
                    act_s += t1 - t0
                    learn_s += t3 - t2
                    episode_return += reward
                    ob = next_ob
                self.global_step += length
                returns.append(episode_return)
                lengths.append(length)
                if frames is not None:
                    frames.write(self._videos_dir() / f"episode-{episode}")
                metrics = {  # the run vocabulary of every algorithm (docs/runs.md)
                    "charts/episode_return": episode_return,
                    "charts/episode_length": float(length),
                    "charts/episodes": float(episode + 1),
                    "charts/steps_per_second": (self.global_step - start_step) / max(time.perf_counter() - started, 1e-9),
                    "time/env": env_s,
                    "time/inference": act_s,
                    "time/learn": learn_s,
                }
                metrics.update(_agent_metrics(agent, episode))
                self.context.logger.log(self.global_step, metrics)
                hooks = self.context.hooks
                stop = bool(hooks) and hooks.emit(
                    "on_rollout_end", RolloutEnd(self.global_step, episode + 1, length, (episode_return,))
                )
                self.context.progress.update(
                    steps=self.global_step, episodes=episode + 1, last_return=episode_return
                )
                log.write(
                    self.global_step,
                    {
                        "episode": episode,
                        "steps": self.global_step,
                        "return": episode_return,
                        "length": length,
                        "terminated": int(bool(terminated)),
                        "truncated": int(bool(truncated)),
                        "random": int(warm_up),
                        "wall_s": round(time.perf_counter() - started, 4),
                    },
                )
                now = time.perf_counter()
                done_episodes = self.episodes_done = episode + 1
                by_count = (
                    cfg.episodes_per_checkpoint is not None
                    and done_episodes % cfg.episodes_per_checkpoint == 0
                )
                by_time = (
                    cfg.time_per_checkpoint is not None
                    and now - last_checkpoint >= cfg.time_per_checkpoint
                )
                if (by_count or by_time) and done_episodes < cfg.max_episodes:
                    self.checkpoint(f"episode-{done_episodes}")
                    last_checkpoint = time.perf_counter()
                if stop or self.context.hooks.stop_reason is not None:
                    self.artifacts["stop_reason"] = self.context.hooks.stop_reason
                    break
        finally:
            self.context.extras["loop_state"] = self.loop_state()
            agent.training = False
            source.close()
            log.close()
            self.artifacts["episode_returns"] = returns
            self.artifacts["episode_lengths"] = lengths
        self.artifacts["time_split_s"] = {"env": env_s, "act": act_s, "learn": learn_s}
        if cfg.eval_episodes > 0:
            result = self.evaluate(cfg.eval_episodes)
            entry = {
                "episode": cfg.max_episodes,
                "step": self.global_step,
                **{k: v for k, v in result.to_dict().items() if k not in ("returns", "lengths")},
            }
            self.artifacts.setdefault("evaluations", []).append(entry)
            self.artifacts["final_evaluation"] = entry
            self.context.logger.log(
                self.global_step,
                {"eval/mean_return": result.mean_return, "eval/std_return": result.std_return},
            )
            if self.context.hooks:
                self.context.hooks.emit(
                    "on_eval",
                    EvalEnd(self.global_step, result.mean_return, result.std_return, tuple(result.returns), time.perf_counter() - started),
                )
            print(f"evaluation without memorize/update: {result.format()}", flush=True)

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, episodes: int | None = None) -> EvalResult:
        """``episodes`` (default ``eval_episodes``, else 10) episodes without memorize/update.

        Episodes are cut at ``max_episode_len``; with ``render`` they are shown.
        """
        from daedalus.evaluation import evaluate

        cfg = self.config
        n_episodes = episodes or cfg.eval_episodes or 10
        self.agent.training = False
        if cfg.render:
            factory = env_factory_with_render_mode(self.context, "human")
        else:
            factory = self.env_factory
        return evaluate(
            self.agent,
            factory,
            n_episodes=n_episodes,
            seed=_eval_seed(self.context),
            max_steps=cfg.max_episode_len,
        )

    # ------------------------------------------------------------------ folders

    def _log_dir(self) -> Path | None:
        if self.config.logdir is not None:
            return Path(os.path.expanduser(self.config.logdir))
        return self.context.run_dir

    def _videos_dir(self) -> Path:
        base = self.context.run_dir if self.context.run_dir is not None else Path.cwd()
        return base / "videos"


def _rng_states(env: Any) -> dict[str, Any]:
    """JSON states of the env's and its action space's NumPy generators (those that exist)."""
    import numpy as np

    states: dict[str, Any] = {}
    for key, owner in (("env", getattr(env, "unwrapped", env)), ("action_space", getattr(env, "action_space", None))):
        rng = getattr(owner, "_np_random", None)
        if isinstance(rng, np.random.Generator):
            states[key] = dict(rng.bit_generator.state)
    return states


def _set_rng_states(env: Any, states: dict[str, Any]) -> None:
    """Inverse of :func:`_rng_states`; an entry that does not fit the env is skipped."""
    import numpy as np

    for key, owner in (("env", getattr(env, "unwrapped", env)), ("action_space", getattr(env, "action_space", None))):
        state = states.get(key)
        if not isinstance(state, dict) or owner is None:
            continue
        try:
            rng = np.random.Generator(getattr(np.random, str(state.get("bit_generator")))())
            rng.bit_generator.state = state
        except (AttributeError, TypeError, ValueError):
            continue
        owner._np_random = rng


def _agent_metrics(agent: Any, episode: int) -> dict[str, float]:
    """Gym Loop's optional ``agent.metrics(episode_num) -> {name: number}``."""
    metrics = getattr(agent, "metrics", None)
    if not callable(metrics):
        return {}
    values = metrics(episode) or {}
    out = {}
    for name, value in values.items():
        try:
            out[f"agent/{name}"] = float(value)
        except (TypeError, ValueError):
            continue
    return out


class _EpisodeLog:
    """``episodes.csv`` (one row per episode) and, optionally, TensorBoard events."""

    FIELDS = ("episode", "steps", "return", "length", "terminated", "truncated", "random", "wall_s")

    def __init__(self, folder: Path | None, tensorboard: bool) -> None:
        self._handle: Any = None
        self._writer: Any = None
        self._tb: Any = None
        if folder is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        self._handle = open(folder / "episodes.csv", "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.DictWriter(self._handle, fieldnames=self.FIELDS)
        self._writer.writeheader()
        if tensorboard:
            from daedalus.tracking.tensorboard import TensorBoardWriter

            self._tb = TensorBoardWriter(folder / "tb")

    def write(self, step: int, row: dict[str, Any]) -> None:
        if self._writer is not None:
            self._writer.writerow(row)
        if self._tb is not None:
            self._tb.log(step, {"episode_return": row["return"], "episode_length": row["length"]})

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class _Frames:
    """RGB frames of one episode (the env renders ``rgb_array``), written with imageio."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.frames: list[Any] = []
        self.add()

    def add(self) -> None:
        frame = self.env.render()
        if frame is not None:
            self.frames.append(frame)

    def write(self, stem: Path) -> Path | None:
        if not self.frames:
            return None
        try:
            import imageio
        except ImportError:
            from daedalus.errors import MissingDependencyError

            raise MissingDependencyError(
                "imageio", "video", "Recording videos (loop.record)"
            ) from None
        import numpy as np

        options: dict[str, Any]
        try:
            import imageio_ffmpeg  # noqa: F401

            path, options = stem.with_suffix(".mp4"), {"fps": 30, "macro_block_size": 1}
        except ImportError:  # GIF needs imageio alone
            path, options = stem.with_suffix(".gif"), {"duration": 1000.0 / 30, "loop": 0}
        path.parent.mkdir(parents=True, exist_ok=True)
        writer: Any
        with imageio.get_writer(path, **options) as writer:
            for frame in self.frames:
                frame = np.asarray(frame)
                # yuv420p needs even sizes: pad by one row/column where odd.
                pad = [(0, frame.shape[0] % 2), (0, frame.shape[1] % 2)] + [(0, 0)] * (
                    frame.ndim - 2
                )
                writer.append_data(np.pad(frame, pad, mode="edge"))
        return path


def loop_parameters(loop_class: type) -> dict[str, Any]:
    """The declared parameters of a loop class with their defaults."""
    getter = getattr(loop_class, "get_default_parameters", None)
    defaults = getter() if callable(getter) else {}
    if not isinstance(defaults, dict):
        raise TypeError(
            f"{loop_class.__name__}.get_default_parameters() must return a dict, "
            f"got {type(defaults).__name__}"
        )
    return dict(defaults)


def loop_help(loop_class: type) -> dict[str, str]:
    """Help texts of a loop's parameters (from its ``config_class``), for create-default."""
    config_class = getattr(loop_class, "config_class", None)
    if config_class is None or not dataclasses.is_dataclass(config_class):
        return {}
    return {f.name: str(f.metadata.get("help", "")) for f in dataclasses.fields(config_class)}
