"""``daedalus resume RUN``: continue an interrupted, crashed or finished run exactly where it stopped.

A run folder holds everything a resume needs, as plain files (nothing is unpickled):

- the agent's checkpoint (weights, optimizer state, the agent's own random generators,
  step/update/episode counters, the replay buffer when ``save_buffer`` is on);
- the checkpoint's ``session.json``: Python's, NumPy's and torch's global generator states,
  how many env-journal records the checkpoint saw, the trailing episode returns the log
  continues from and the training seconds so far;
- the env journal (``journal/``, :mod:`daedalus.rollout.journal`): every action sent to the
  training envs, stepped again on resume to bring the envs back to their state;
- ``code.json`` and the profile's digest in run.json, to say what changed since.

The resumed session continues metrics.csv and TensorBoard from the checkpoint's step
(rows logged after it by a killed process are dropped), appends to the run's evaluations, and
counts steps/s over the resumed part only. With the same code and profile the result is
bit-identical to an uninterrupted run (tests/slow/test_resume_exact.py).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from daedalus.api.resolve import ResolvedProfile, validate
from daedalus.api.session import (
    ResumePoint,
    RunResult,
    code_fingerprint,
    global_rng_state,
    run_session,
    set_global_rng_state,
    text_digest,
)
from daedalus.config import load_profiles
from daedalus.errors import RunError
from daedalus.runs.io import atomic_write_text, read_json
from daedalus.runs.store import PROFILE_FILE, SESSION_FILE, CheckpointInfo, RunFolder, resolve_run

__all__ = ["resume", "resume_changes"]

#: Among checkpoints of one step, the one a resume prefers (all hold the same state).
_PREFERENCE = {"final": 0, "last": 1, "best": 3}


def resume(
    run: str | Path,
    *,
    runs_dir: str | Path | None = None,
    total_steps: int | None = None,
    checkpoint: str | None = None,
    force: bool = False,
    trust_code: bool = False,
    callbacks: Sequence[Any] = (),
) -> RunResult:
    """Continue ``run`` from its newest resumable checkpoint (or ``checkpoint``) up to its
    ``total_steps`` (or the new ``total_steps``); returns the run's result.

    Refuses (a RunError saying what changed) when the daedalus code, the user code the
    profile names, the library versions or the profile differ from the run's, unless
    ``force``. A run whose profile names code outside the project needs ``trust_code``
    (docs/security.md).
    """
    from daedalus.registry import load_project_modules, untrusted_source

    load_project_modules()
    folder = resolve_run(run, Path(runs_dir) if runs_dir else None)
    data = folder.refresh_status()
    if data.get("status") == "running":
        raise RunError(
            f"{folder.path}: the run is still training (pid {data.get('pid')} on {data.get('host')}). "
            "Stop it first (Ctrl-C or SIGTERM), then resume."
        )
    profile_file = folder.path / PROFILE_FILE
    if not profile_file.is_file():
        raise RunError(f"{folder.path}: profile.yaml is missing, so the run cannot be resumed.")
    text = profile_file.read_text(encoding="utf-8", errors="replace")
    (profile,) = load_profiles(profile_file)
    if trust_code:
        resolved = validate(profile)
    else:
        with untrusted_source(f"run folder {folder.path}"):
            resolved = validate(profile)

    changes = resume_changes(folder, resolved, text, data)
    if changes:
        listed = "\n".join(f"  - {change}" for change in changes)
        if not force:
            raise RunError(
                f"{folder.path}: what the run was trained with has changed since:\n{listed}\n"
                "A resume would not continue the same run exactly. Undo the changes, or pass --force to "
                "resume with what is there now."
            )
        print(f"--force: resuming despite these changes:\n{listed}", file=sys.stderr, flush=True)

    info, session = _pick_checkpoint(folder, checkpoint)
    step = int(session["step"])
    if _is_stepwise(resolved):
        _check_loop_left(folder, resolved, session, total_steps)
        target: Any = None
    else:
        target = _check_steps_left(folder, resolved, info, step, total_steps)
    journal_steps = int(session["journal_steps"])

    # Everything that can be refused is checked before the run folder is touched.
    current = global_rng_state()
    try:
        set_global_rng_state(session.get("rng") or {})
    finally:
        set_global_rng_state(current)

    from daedalus.rollout.journal import EnvJournal

    journal = EnvJournal.open_for_resume(folder.path / "journal", journal_steps)
    artifacts = _artifacts_until(folder, step)
    exact = bool(session.get("exact", False)) and not changes
    notes = [] if session.get("exact", False) else [
        f"checkpoint '{info.name}' was written by a run stopped mid-update (a second Ctrl-C, or a failure): "
        "the continuation is not bit-identical to an uninterrupted run"
    ]
    if getattr(resolved.config, "save_buffer", None) is False:
        exact = False
        notes.append("the replay buffer was not saved (config.save_buffer: false): it refills from the resumed step")
    for note in notes:
        print(f"note: {note}", file=sys.stderr, flush=True)
    folder.reopen({
        "from_checkpoint": info.name, "at_step": step, "checkpoint_saved_at": info.saved_at,
        "total_steps": target, "exact": exact, "forced_changes": changes if changes else None,
    })
    point = ResumePoint(checkpoint=info, session=session, step=step, journal=journal, artifacts=artifacts)
    return run_session(resolved, folder, callbacks, resume=point)


def _is_stepwise(resolved: ResolvedProfile) -> bool:
    from daedalus.agents.stepwise import is_stepwise

    return is_stepwise(resolved.spec)


def _check_steps_left(
    folder: RunFolder, resolved: ResolvedProfile, info: CheckpointInfo, step: int, total_steps: int | None
) -> int:
    """The step count to train to; applies ``total_steps`` (rewriting profile.yaml) when given."""
    config_total = getattr(resolved.config, "total_steps", None)
    target = total_steps if total_steps is not None else config_total
    if not isinstance(target, int) or step >= target:
        raise RunError(
            f"{folder.path}: nothing to resume: the checkpoint '{info.name}' is at step {step} and the run's "
            f"total_steps is {config_total}; pass --total-steps N with N larger than {step} to train it further."
        )
    if total_steps is not None and total_steps != config_total:
        _rewrite_total_steps(folder, resolved, total_steps)
    return target


def _check_loop_left(folder: RunFolder, resolved: ResolvedProfile, session: dict[str, Any], total_steps: int | None) -> None:
    """A stepwise agent's run resumes at its loop's next episode, up to ``loop.max_episodes``."""
    if total_steps is not None:
        raise RunError(
            f"{folder.path}: a stepwise agent's run is counted in episodes: --total-steps does not apply. "
            "Edit loop.max_episodes in the profile and train again, or resume without --total-steps."
        )
    raw = session.get("loop")
    loop: dict[str, Any] = raw if isinstance(raw, dict) else {}
    done = loop.get("episode", 0)
    max_episodes = (resolved.profile.loop or {}).get("max_episodes", 100)
    if isinstance(done, int) and isinstance(max_episodes, int) and done >= max_episodes:
        raise RunError(f"{folder.path}: nothing to resume: all {max_episodes} episodes of loop.max_episodes ran.")


def resume_changes(folder: RunFolder, resolved: ResolvedProfile, text: str, data: dict[str, Any]) -> list[str]:
    """What differs between the run as trained and what a resume would use now, one line each."""
    import yaml

    changes: list[str] = []
    digest = data.get("profile_sha256")
    if isinstance(digest, str) and digest != text_digest(text):
        changes.append(f"{folder.path / PROFILE_FILE} was edited after the run started")
    saved = yaml.safe_load(text)
    now = {resolved.profile.profile_id: resolved.resolved_dict()}
    if isinstance(saved, dict):
        for key in _differing_keys(saved, yaml.safe_load(yaml.safe_dump(now, sort_keys=False))):
            changes.append(f"the profile now resolves '{key}' differently (a default changed in the code?)")
    try:
        recorded = read_json(folder.path / "code.json")
    except (OSError, ValueError, RecursionError):
        print(f"note: {folder.path} has no readable code.json; code changes cannot be checked", file=sys.stderr, flush=True)
        return changes
    current = code_fingerprint(resolved)
    old_files = recorded.get("files") if isinstance(recorded, dict) else None
    if isinstance(old_files, dict):
        changed = sorted(k for k in current["files"] if k in old_files and old_files[k] != current["files"][k])
        added = sorted(k for k in current["files"] if k not in old_files)
        removed = sorted(k for k in old_files if k not in current["files"])
        for label, names in (("changed", changed), ("new", added), ("removed", removed)):
            if names:
                shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
                changes.append(f"code {label}: {shown}")
    old_versions = recorded.get("versions") if isinstance(recorded, dict) else None
    if isinstance(old_versions, dict):
        for name, version in current["versions"].items():
            if name in old_versions and old_versions[name] != version:
                changes.append(f"{name} {old_versions[name]} -> {version}")
    return changes


def _differing_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            out += _differing_keys(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if a == b else [prefix.split(".", 1)[-1] if "." in prefix else prefix]


def _pick_checkpoint(folder: RunFolder, name: str | None) -> tuple[CheckpointInfo, dict[str, Any]]:
    """The checkpoint to resume from with its session.json: ``name``, else the newest exact one
    (the newest of any kind when none is exact)."""
    candidates: list[tuple[CheckpointInfo, dict[str, Any]]] = []
    for info in folder.checkpoints():
        if name is not None and info.name != name:
            continue
        session = _read_session(info)
        if session is not None:
            candidates.append((info, session))
    if not candidates:
        if name is not None:
            raise RunError(
                f"{folder.path}: checkpoint '{name}' cannot be resumed from (missing, or written before "
                "exact resume existed: no session.json). daedalus runs show lists the checkpoints."
            )
        raise RunError(
            f"{folder.path}: no checkpoint to resume from (none saved, or all written before exact resume "
            "existed). Train the profile again; this run's data stays as it is."
        )

    def rank(item: tuple[CheckpointInfo, dict[str, Any]]) -> tuple[int, int, int]:
        info, session = item
        return (int(bool(session.get("exact"))), int(session["step"]), -_PREFERENCE.get(info.name, 2))

    return max(candidates, key=rank)


def _read_session(info: CheckpointInfo) -> dict[str, Any] | None:
    try:
        session = read_json(info.path / SESSION_FILE)
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(session, dict):
        return None
    step, journal_steps = session.get("step"), session.get("journal_steps")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**62 for v in (step, journal_steps)):
        return None
    if not isinstance(session.get("rng", {}), dict):
        return None
    returns = session.get("recent_returns", [])
    if not isinstance(returns, list) or not all(isinstance(r, int | float) and math.isfinite(r) for r in returns):
        session["recent_returns"] = []
    seconds = session.get("train_seconds", 0.0)
    if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
        session["train_seconds"] = 0.0
    return session


def _artifacts_until(folder: RunFolder, step: int) -> dict[str, Any]:
    """artifacts.json as it was at the checkpoint: evaluations after ``step`` and the last
    session's final evaluation and stop reason dropped."""
    try:
        artifacts = read_json(folder.path / "artifacts.json")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as exc:
        raise RunError(f"{folder.path / 'artifacts.json'}: unreadable ({type(exc).__name__}); the run cannot be resumed.") from None
    if not isinstance(artifacts, dict):
        return {}
    for key in ("final_evaluation", "final_evaluation_error", "stop_reason", "time_split"):
        artifacts.pop(key, None)
    evaluations = artifacts.get("evaluations")
    if isinstance(evaluations, list):
        artifacts["evaluations"] = [
            e for e in evaluations
            if isinstance(e, dict) and isinstance(e.get("step"), int | float) and e["step"] <= step
            and isinstance(e.get("mean_return"), int | float)
        ]
    return artifacts


def _rewrite_total_steps(folder: RunFolder, resolved: ResolvedProfile, total_steps: int) -> None:
    """Train to ``total_steps`` now; profile.yaml says the new ``total_steps`` (and run.json its digest), so the folder tells the truth."""
    import yaml

    profile = resolved.profile
    profile.config["total_steps"] = total_steps
    if isinstance(resolved.config, dict):
        resolved.config["total_steps"] = total_steps
    else:
        resolved.config.total_steps = total_steps
    text = yaml.safe_dump({profile.profile_id: resolved.resolved_dict()}, sort_keys=False)
    atomic_write_text(folder.path / PROFILE_FILE, text)
    folder.update(profile_sha256=text_digest(text))
