"""Batches: every profile of a file trained in this process, in parallel worker processes, or on Ray."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daedalus.api.resolve import load
from daedalus.api.session import DEFAULT_RUNS_DIR, RunResult, train_sequence
from daedalus.config import Profile
from daedalus.errors import DaedalusError
from daedalus.runs.store import list_runs


@dataclass
class BatchResult:
    """The outcome of ``daedalus batch``: one result per profile."""

    batch_id: str
    results: list[RunResult]

    @property
    def ok(self) -> bool:
        """Whether every profile completed."""
        return all(r.status == "completed" for r in self.results)


def batch(
    path: str | Path,
    *,
    runs_dir: str | Path = DEFAULT_RUNS_DIR,
    parallel: int = 1,
    overrides: Sequence[str] = (),
    backend: str = "local",
    address: str | None = None,
    cpus_per_run: float = 1,
    resources: Mapping[str, float] | None = None,
) -> BatchResult:
    """Train every profile of a file: in this process, in ``parallel`` worker processes, or on Ray.

    All profiles are validated first. A failed profile does not stop the others.

    ``backend="ray"`` trains each profile as one Ray task asking for ``cpus_per_run`` CPUs
    (plus the custom Ray ``resources``, e.g. ``{"gpu_node": 1}``), on the cluster at
    ``address`` (or ``$RAY_ADDRESS``, or one already initialized in this process, or a local
    Ray), and brings every run folder back into ``runs_dir``; see
    :mod:`daedalus.api.ray_batch`. ``parallel`` is for the local backend only: Ray runs as
    many profiles at once as the cluster has room for.
    """
    _check_backend(backend, parallel, address, cpus_per_run, resources)
    if backend == "ray":
        from daedalus.api.ray_batch import import_ray

        import_ray()  # before any profile is loaded: a missing Ray is one clear message
    batch_id = uuid.uuid4().hex[:12]
    resolved = load(path, None, overrides)
    if backend == "ray":
        from daedalus.api.ray_batch import ray_batch

        results = ray_batch(
            path, resolved, runs_dir=Path(runs_dir), overrides=overrides, batch_id=batch_id,
            address=address, cpus_per_run=cpus_per_run, resources=resources,
        )
        return BatchResult(batch_id, results)
    if parallel <= 1:
        return BatchResult(batch_id, train_sequence(resolved, runs_dir=runs_dir, batch_id=batch_id))
    return BatchResult(batch_id, _batch_subprocesses(path, [r.profile for r in resolved], Path(runs_dir), parallel, overrides, batch_id))


BACKENDS = ("local", "ray")


def _check_backend(
    backend: str, parallel: int, address: str | None, cpus_per_run: float, resources: Mapping[str, float] | None
) -> None:
    if backend not in BACKENDS:
        raise DaedalusError(f"unknown batch backend '{backend}'. Use one of: {', '.join(BACKENDS)}.")
    if backend == "ray":
        if parallel != 1:
            raise DaedalusError(
                "--parallel is for --backend local. With --backend ray every profile is a Ray task and "
                "Ray runs as many at once as the cluster has CPUs for (each asks for --cpus-per-run)."
            )
        if isinstance(cpus_per_run, bool) or not isinstance(cpus_per_run, int | float) or not cpus_per_run > 0:
            raise DaedalusError(f"--cpus-per-run must be a number > 0, got {cpus_per_run!r}.")
        return
    if address is not None:
        raise DaedalusError("--address is for --backend ray. Add --backend ray to train the batch on that Ray cluster.")
    if cpus_per_run != 1 or resources:
        raise DaedalusError("--cpus-per-run (and Ray resources) are for --backend ray. Add --backend ray, or leave them out.")


def _batch_subprocesses(
    path: str | Path,
    profiles: list[Profile],
    runs_dir: Path,
    parallel: int,
    overrides: Sequence[str],
    batch_id: str,
) -> list[RunResult]:
    env = {**os.environ, "DAEDALUS_BATCH_ID": batch_id, "DAEDALUS_PROGRESS": "plain"}
    pending = list(profiles)
    running: dict[str, subprocess.Popen[bytes]] = {}
    exit_codes: dict[str, int] = {}
    try:
        while pending or running:
            while pending and len(running) < parallel:
                profile = pending.pop(0)
                cmd = [sys.executable, "-m", "daedalus", "train", str(path), profile.profile_id, "--runs-dir", str(runs_dir)]
                for item in overrides:
                    cmd += ["--set", item]
                running[profile.profile_id] = subprocess.Popen(cmd, env=env)
            for pid, proc in list(running.items()):
                code = proc.poll()
                if code is not None:
                    exit_codes[pid] = code
                    del running[pid]
            time.sleep(0.05)
    except KeyboardInterrupt:
        for proc in running.values():
            proc.send_signal(signal.SIGINT)
        for pid, proc in running.items():
            exit_codes[pid] = proc.wait()
    rows = {r["profile_id"]: r for r in list_runs(runs_dir, batch_id=batch_id)}
    results = []
    for profile in profiles:
        row = rows.get(profile.profile_id)
        if row is None:
            code = exit_codes.get(profile.profile_id)
            status = "failed" if code is not None else "interrupted"
            results.append(RunResult("-", Path("-"), profile.profile_id, profile.agent_id, profile.env_id, status, error=f"worker exited with code {code}" if code is not None else "not started"))
            continue
        results.append(_result_from_row(row))
    return results


def _result_from_row(row: dict[str, Any]) -> RunResult:
    error = row.get("error")
    return RunResult(
        run_id=row["run_id"],
        path=Path(row["path"]),
        profile_id=row["profile_id"],
        agent_id=row.get("agent_id") or "",
        env_id=row.get("env_id") or "",
        status=row.get("status") or "?",
        steps=int(row.get("steps") or 0),
        duration_s=float(row.get("duration_s") or ((row.get("finished_at") or 0) - (row.get("started_at") or 0))),
        best_return=row.get("best_return"),
        final_return=row.get("final_return"),
        error=error.get("message") if isinstance(error, dict) else None,
    )

