"""``daedalus batch --backend ray``: every profile of a file trained as one Ray task.

The driver (this process) validates every profile first, exactly as a local batch does, then
submits one task per profile (``num_cpus=cpus_per_run``). A task runs on whichever node Ray
picks and never assumes a disk shared with the driver:

1. it recreates the profile file, and every ``file.py:Obj`` file the profile names by a
   relative path inside the profile's folder, in a fresh temporary folder on its node, and
   loads the profile from there with the batch's ``--set`` overrides;
2. it trains it with the normal session (:func:`daedalus.api.session.train_resolved`) into
   a runs folder inside that temporary folder;
3. it packs the finished run folder as a tar.gz in memory (refusing symlinks and anything
   that is not a plain file or folder), deletes its temporary folder, and returns the bytes
   with the run's outcome.

The driver unpacks each archive into its own runs folder (every member checked, and
``tarfile``'s ``data`` filter on top), re-points run.json, profile.yaml and code.json from
the node's temporary paths to the driver's, and indexes the run like a local one.

**User code.** The profile file and the ``file.py`` files it references by a relative path
inside its own folder travel with the task. Everything else must exist on every node: files
referenced by an absolute path or from outside the profile's folder (``../x.py``), modules
those files import from their neighbours, ``pkg.mod:Obj`` modules, the modules listed in
``.daedalus.yaml`` (imported from the same project folder when it exists on the node,
otherwise by name) and data files named in the profile (demonstrations, ``init_from`` runs).

**Retries.** A task whose worker process dies (killed, out of memory, node lost: any
``ray.exceptions.RayError``) is submitted once more; if that attempt dies too, the profile
is reported ``failed`` with both reasons. A profile that fails on its own (training error,
a profile the node cannot load) is not retried: it fails as in a local batch. The temporary
folder of a killed attempt is removed by the next attempt of that profile when it lands on
the same node; on another node it stays in the system temp folder (``daedalus-ray-<batch>-*``).

**Reused by** ``daedalus tune --backend ray`` (:mod:`daedalus.api.tune`): :func:`connect`,
:func:`task_payload`, :class:`TaskPool` (the retry), :func:`run_on_node` (the task's frame),
:func:`pack_run`, :func:`bring_back` and :func:`clean_nodes`.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import stat
import sys
import tarfile
import tempfile
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daedalus.api.resolve import ResolvedProfile, code_references, load
from daedalus.api.session import RunResult, text_digest
from daedalus.config import Profile
from daedalus.errors import DaedalusError, MissingDependencyError
from daedalus.registry import is_ref
from daedalus.runs.io import atomic_write_text, read_json
from daedalus.runs.store import PROFILE_FILE, RUN_FILE, RunFolder

#: Temporary folders of the tasks, in the node's temp folder: ``daedalus-ray-<batch>-<index>-<random>``.
TEMP_PREFIX = "daedalus-ray-"
#: What a profile gets when its task died this many times.
_ATTEMPTS = 2


def import_ray() -> Any:
    """Import Ray, or raise the one-paragraph :class:`MissingDependencyError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray", "daedalus batch --backend ray") from None
    return ray


def ray_batch(
    path: str | Path,
    resolved: Sequence[ResolvedProfile],
    *,
    runs_dir: Path,
    overrides: Sequence[str],
    batch_id: str,
    address: str | None = None,
    cpus_per_run: float = 1,
    resources: Mapping[str, float] | None = None,
) -> list[RunResult]:
    """Train each of ``resolved`` (the validated profiles of ``path``) as one Ray task.

    Returns one :class:`RunResult` per profile, in order, each pointing at the run folder
    brought back into ``runs_dir``. Ray is joined when already initialized (and left so),
    otherwise started locally or connected to ``address`` / ``$RAY_ADDRESS`` (and shut down
    at the end). ``resources`` are extra Ray resources each task asks for (e.g. a custom
    node resource to pin the tasks to some nodes). See the module docstring for what
    travels with a task, the retry rule and the clean-up.
    """
    ray = import_ray()
    if not resolved:
        return []
    payloads = [task_payload(Path(path), item, index, overrides, batch_id) for index, item in enumerate(resolved)]
    owned = connect(ray, address)
    try:
        return _run_tasks(ray, payloads, resolved, Path(runs_dir), cpus_per_run, dict(resources or {}))
    finally:
        if owned:
            ray.shutdown()


# --------------------------------------------------------------------------- driver


def connect(ray: Any, address: str | None) -> bool:
    """Join or start Ray; True when this call initialized it (so it is shut down at the end)."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        if address:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise DaedalusError(
            f"cannot start or join {where}: {first_line(exc)}. On the head node run "
            "'ray start --head --port=6379' and pass --address HOST:6379 (or leave --address out "
            "to start Ray on this machine)."
        ) from None
    return True


def task_payload(path: Path, item: ResolvedProfile, index: int, overrides: Sequence[str], batch_id: str) -> dict[str, Any]:
    """What a task needs to rebuild and train one profile on any node (plain, picklable data).

    :func:`run_on_node` rebuilds the profile from it; callers may add keys of their own.
    """
    from daedalus.registry import find_project_file, read_project_modules

    profile = item.profile
    base = profile.base_dir.resolve()
    files: dict[str, bytes] = {}
    for _key, ref in code_references(profile):
        file_part = ref.rpartition(":")[0]
        if not (is_ref(ref) and file_part.endswith(".py")) or Path(file_part).expanduser().is_absolute():
            continue
        for root in (base, Path.cwd().resolve()):
            candidate = (root / file_part).resolve()
            if candidate.is_file() and candidate.is_relative_to(root):  # never a file from outside the folder
                files[Path(file_part).as_posix()] = candidate.read_bytes()
                break
    project_file = find_project_file(None)
    env = {k: v for k, v in os.environ.items() if k.startswith("DAEDALUS_")}
    env.update(DAEDALUS_BATCH_ID=batch_id, DAEDALUS_PROGRESS="plain")
    return {
        "index": index,
        "batch_id": batch_id,
        "profile_id": profile.profile_id,
        "file_name": path.name,
        "profile_text": path.read_bytes(),
        "profile_dir": str(base),
        "files": files,
        "overrides": list(overrides),
        "project_dir": str(project_file.parent.resolve()) if project_file is not None else None,
        "project_modules": read_project_modules(project_file) if project_file is not None else [],
        "env": env,
    }


def _run_tasks(
    ray: Any,
    payloads: list[dict[str, Any]],
    resolved: Sequence[ResolvedProfile],
    runs_dir: Path,
    cpus_per_run: float,
    resources: dict[str, float],
) -> list[RunResult]:
    pool = TaskPool(ray, _train_task, num_cpus=cpus_per_run, resources=resources, label=lambda i: resolved[i].profile.profile_id)
    results: dict[int, RunResult] = {}
    for index, payload in enumerate(payloads):
        pool.submit(index, payload)
    try:
        while pool.pending:
            for done in pool.wait():
                index = done.key
                if done.outcome is None:
                    results[index] = no_run(resolved[index].profile, "failed", done.error)
                else:
                    results[index] = bring_back(done.outcome, resolved[index].profile, runs_dir, done.deaths)
                _report(results[index])
    except KeyboardInterrupt:
        for index in pool.cancel():
            results[index] = no_run(resolved[index].profile, "interrupted", "cancelled (Ctrl-C) before its run folder came back")
    if pool.deaths:
        clean_nodes(ray, f"{TEMP_PREFIX}{payloads[0]['batch_id']}-")
    return [results.get(i) or no_run(resolved[i].profile, "interrupted", "not started") for i in range(len(payloads))]


@dataclass
class TaskDone:
    """A task of a :class:`TaskPool` that finished: its outcome, or None when its worker died twice."""

    key: Any
    outcome: dict[str, Any] | None
    #: Why the earlier attempts died (empty when the first attempt returned).
    deaths: list[str] = field(default_factory=list)

    @property
    def error(self) -> str:
        """Why there is no outcome (both attempts died)."""
        return "the Ray task died twice: " + "; then ".join(self.deaths)


class TaskPool:
    """Ray tasks, each under a key of the caller's, resubmitted once when their worker dies.

    ``function`` runs with ``max_calls=1``: a fresh worker process per task, as a local
    parallel batch has (sys.path, imported user files, torch threads and env vars never leak
    into the next task), and ``max_retries=0``: the one retry is ours, so that it is counted,
    printed and recorded. A task that dies (any ``ray.exceptions.RayError``) is submitted once
    more with ``payload["attempt"] = 2``; ordinary failures are the task's own outcome.
    """

    def __init__(
        self,
        ray: Any,
        function: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        num_cpus: float,
        resources: Mapping[str, float] | None = None,
        label: Callable[[Any], str] = str,
    ) -> None:
        self.ray = ray
        self._remote = ray.remote(max_calls=1, max_retries=0)(function)
        self._options: dict[str, Any] = {"num_cpus": int(num_cpus) if float(num_cpus).is_integer() else num_cpus}
        if resources:
            self._options["resources"] = dict(resources)
        self._label = label
        self._payloads: dict[Any, dict[str, Any]] = {}
        #: Task reference -> key, for the tasks running or queued.
        self.pending: dict[Any, Any] = {}
        #: Key -> why its attempts died, for every task whose worker died at least once.
        self.deaths: dict[Any, list[str]] = {}

    def submit(self, key: Hashable, payload: dict[str, Any]) -> None:
        """Start the task ``key`` with ``payload`` (its first attempt)."""
        self._payloads[key] = payload
        self._send(key)

    def _send(self, key: Any) -> None:
        payload = {**self._payloads[key], "attempt": len(self.deaths.get(key, [])) + 1}
        self.pending[self._remote.options(**self._options).remote(payload)] = key

    def wait(self, timeout: float = 1.0) -> list[TaskDone]:
        """The tasks that finished within ``timeout`` seconds (a died first attempt is resubmitted instead)."""
        ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=timeout)
        finished = []
        for ref in ready:
            key = self.pending.pop(ref)
            try:
                outcome = self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:
                reason = f"{type(exc).__name__}: {first_line(exc)}"
                deaths = self.deaths.setdefault(key, [])
                deaths.append(reason)
                if len(deaths) < _ATTEMPTS:
                    print(f"{self._label(key)}: the Ray task died ({reason}); retrying once", file=sys.stderr, flush=True)
                    self._send(key)
                    continue
                outcome = None
            finished.append(TaskDone(key, outcome, list(self.deaths.get(key, []))))
        return finished

    def cancel(self) -> list[Any]:
        """Cancel every pending task (Ctrl-C); returns their keys."""
        keys = []
        for ref, key in self.pending.items():
            self.ray.cancel(ref, force=False)
            keys.append(key)
        self.pending.clear()
        return keys


def clean_nodes(ray: Any, prefix: str) -> None:
    """Remove the temporary folders ``<prefix>*`` that killed tasks left, on every live node."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    clean = ray.remote(num_cpus=0, max_retries=0)(_remove_leftovers)
    refs = [
        clean.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(prefix)
        for node in ray.nodes()
        if node.get("Alive")
    ]
    with contextlib.suppress(ray.exceptions.RayError):  # best effort: a node that went away keeps its leftovers
        ray.wait(refs, num_returns=len(refs), timeout=30)


def _report(result: RunResult) -> None:
    line = f"run {result.run_id}: {result.status} after {result.steps} steps in {result.duration_s:.1f}s"
    if result.final_return is not None:
        line += f", final return {result.final_return:.2f}"
    print(line + (f" -- error: {result.error}" if result.error else ""), flush=True)


def no_run(profile: Profile, status: str, message: str) -> RunResult:
    """The result of a profile that has no run folder (as the local parallel batch reports it)."""
    return RunResult("-", Path("-"), profile.profile_id, profile.agent_id, profile.env_id, status, error=message)


def bring_back(outcome: dict[str, Any], profile: Profile, runs_dir: Path, deaths: Sequence[str] = ()) -> RunResult:
    """Unpack a task's run folder into ``runs_dir``, index it, and make its RunResult (for ``profile``).

    ``outcome`` is what the task returned for the run (see :func:`_train_task`); ``deaths``
    why earlier attempts of the task died (recorded in run.json's ``ray`` entry).
    """
    archive = outcome.get("archive")
    if archive is None:
        return no_run(profile, "failed", str(outcome.get("error") or "the task returned no run folder"))
    try:
        dest = unpack_run(archive, str(outcome["run_id"]), runs_dir)
        folder = RunFolder(dest)
        _rebase_paths(dest, str(outcome["src_dir"]), str(outcome["profile_dir"]))
        ray_info = {
            "node_host": outcome.get("host"),
            "node_id": outcome.get("node_id"),
            "temp_dir": outcome.get("temp_dir"),
            "attempt": len(deaths) + 1,
        }
        if deaths:
            ray_info["retried_after"] = list(deaths)
        # The node's command line is a Ray worker's; the command that made the run is the driver's.
        data = folder.update(run_id=dest.name, path=str(dest.resolve()), command=sys.argv, ray=ray_info)
    except (OSError, tarfile.TarError, DaedalusError, ValueError) as exc:
        return no_run(profile, "failed", f"the run finished on its node but could not be brought back: {first_line(exc)}")
    error = data.get("error")
    try:
        artifacts = read_json(dest / "artifacts.json")
    except (OSError, ValueError):
        artifacts = {}
    return RunResult(
        run_id=dest.name,
        path=runs_dir / dest.name,
        profile_id=profile.profile_id,
        agent_id=profile.agent_id,
        env_id=profile.env_id,
        status=str(data.get("status") or "?"),
        steps=int(data.get("steps") or 0),
        duration_s=float(data.get("duration_s") or 0.0),
        best_return=data.get("best_return"),
        final_return=data.get("final_return"),
        error=error.get("message") if isinstance(error, dict) else None,
        artifacts=artifacts if isinstance(artifacts, dict) else {},
    )


def unpack_run(archive: bytes, run_id: str, runs_dir: Path) -> Path:
    """Extract a run folder archive (from :func:`pack_run`) into ``runs_dir``; returns the new folder.

    Every member must lie inside the one folder ``run_id`` and be a plain file or folder: an
    absolute path, ``..``, a link or a device file refuses the whole archive (a DaedalusError),
    and ``tarfile``'s ``data`` filter applies on top. The folder is renamed into place only
    when complete; when ``run_id`` is taken, ``-2``, ``-3``, ... is appended.
    """
    if not _plain_name(run_id):
        raise DaedalusError(f"a Ray task returned a run id that is not a folder name: {run_id!r}")
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=runs_dir))
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, run_id)
            tar.extractall(staging, members=members, filter="data")
        source = staging / run_id
        if not (source / RUN_FILE).is_file():
            raise DaedalusError(f"the archive of run {run_id} holds no {RUN_FILE}")
        for n in range(1, 10_000):
            dest = runs_dir / (run_id if n == 1 else f"{run_id}-{n}")
            try:
                dest.mkdir()  # claims the name; the rename below replaces the empty folder
            except FileExistsError:
                continue
            os.replace(source, dest)
            return dest
        raise DaedalusError(f"no free folder name for run {run_id} in {runs_dir}")  # pragma: no cover
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_member(member: tarfile.TarInfo, run_id: str) -> None:
    name = member.name
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or Path(name).is_absolute() or ".." in parts or not parts or parts[0] != run_id:
        raise DaedalusError(f"refusing the run folder archive: member {name!r} lies outside the folder {run_id}")
    if not (member.isfile() or member.isdir()):
        raise DaedalusError(f"refusing the run folder archive: member {name!r} is not a plain file or folder")


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name


def _rebase_paths(run_dir: Path, old: str, new: str) -> None:
    """Point the run's profile.yaml and code.json at the driver's profile folder instead of the node's copy."""
    import yaml

    profile_file = run_dir / PROFILE_FILE
    if profile_file.is_file():
        text = profile_file.read_text(encoding="utf-8")
        if old in text:
            data = _rebase(yaml.safe_load(text), old, new)
            text = yaml.safe_dump(data, sort_keys=False)  # as the session writes it
            atomic_write_text(profile_file, text)
            RunFolder(run_dir).update(profile_sha256=text_digest(text))
    code_file = run_dir / "code.json"
    if code_file.is_file():
        from daedalus.runs.io import atomic_write_json

        code = read_json(code_file)
        if old in str(code):
            atomic_write_json(code_file, _rebase(code, old, new))


def _rebase(value: Any, old: str, new: str) -> Any:
    # ``old`` is the task's own temporary folder (unique), wherever it appears in a value or a
    # key (code.json's keys read "env_id: /tmp/daedalus-ray-.../src/envs.py").
    if isinstance(value, str):
        return new if value == old else value.replace(old + "/", new + "/")
    if isinstance(value, dict):
        return {_rebase(k, old, new): _rebase(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebase(v, old, new) for v in value]
    return value


def first_line(exc: BaseException) -> str:
    """The first line of an error's message, at most 300 characters."""
    text = str(exc).strip() or type(exc).__name__
    line = text.splitlines()[0]
    return line if len(line) <= 300 else line[:297] + "..."


# --------------------------------------------------------------------------- the task (on a node)


def _train_task(payload: dict[str, Any]) -> dict[str, Any]:
    """One profile, trained on this node in a temporary folder that is gone when this returns.

    Returns ``{"archive": tar.gz bytes or None, "run_id", "status", "error", "temp_dir",
    "src_dir", "profile_dir", "host", "node_id"}``. Ordinary failures are returned, never
    raised, so that only a dead worker makes the driver retry.
    """

    def train(item: ResolvedProfile, runs_dir: Path, out: dict[str, Any]) -> None:
        from daedalus.api.session import train_resolved

        result = train_resolved(item, runs_dir=runs_dir, batch_id=payload["batch_id"])
        out.update(run_id=result.run_id, status=result.status, error=result.error)
        out["archive"] = pack_run(result.path)

    return run_on_node(payload, f"{TEMP_PREFIX}{payload['batch_id']}-{payload['index']}-", train)


def run_on_node(
    payload: dict[str, Any], prefix: str, work: Callable[[ResolvedProfile, Path, dict[str, Any]], None]
) -> dict[str, Any]:
    """The frame of a task on its node: rebuild the profile of ``payload`` (:func:`task_payload`) and call ``work``.

    Removes the leftovers ``<prefix>*`` of a killed earlier attempt, makes a temporary folder
    ``<prefix>*``, sets the driver's ``DAEDALUS_*`` variables, recreates the profile file and
    its user code there, imports the project's modules, loads the profile with the overrides,
    then calls ``work(profile, runs_dir, out)``, which trains into ``runs_dir`` (inside the
    temporary folder) and puts what the driver needs (packed run folders) into ``out``. The
    temporary folder is removed before this returns ``out``. Any exception is the task's
    outcome (``status: failed``, ``error``), never raised: only a dead worker is retried.
    """
    import ray

    _remove_leftovers(prefix)  # an earlier attempt of this task killed on this node
    temp_dir = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
    out: dict[str, Any] = {
        "archive": None,
        "temp_dir": str(temp_dir),
        "profile_dir": payload["profile_dir"],
        "host": socket.gethostname(),
        "node_id": ray.get_runtime_context().get_node_id(),
    }
    os.environ.update(payload["env"])  # a worker runs one task only (max_calls=1)
    try:
        src_dir = temp_dir / "src"
        out["src_dir"] = str(src_dir)
        profile_path = _write_sources(src_dir, payload)
        _load_project(payload, temp_dir)
        (item,) = load(profile_path, [payload["profile_id"]], payload["overrides"])
        work(item, temp_dir / "runs", out)
    except Exception as exc:  # everything a profile can do wrong is its result, never a retry
        message = str(exc) if isinstance(exc, DaedalusError) else f"{type(exc).__name__}: {exc}"
        out.update(status="failed", archive=None, error=message)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    return out


def _remove_leftovers(prefix: str) -> None:
    root = Path(tempfile.gettempdir())
    for path in root.glob(prefix + "*"):
        try:
            if path.is_dir() and not path.is_symlink() and path.stat().st_uid == os.getuid():
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


def _write_sources(src_dir: Path, payload: dict[str, Any]) -> Path:
    """Recreate the profile file and the user-code files it names in ``src_dir``; returns the profile's path."""
    src_dir.mkdir(parents=True)
    for relative, data in payload["files"].items():
        target = (src_dir / relative).resolve()
        if not target.is_relative_to(src_dir.resolve()):
            continue  # never written outside the task's folder; the reference must exist on the node
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    profile_path = src_dir / Path(payload["file_name"]).name
    profile_path.write_bytes(payload["profile_text"])
    return profile_path


def _load_project(payload: dict[str, Any], temp_dir: Path) -> None:
    """Import plugins and the driver project's ``.daedalus.yaml`` modules on this node."""
    from daedalus.registry import import_user_module, load_project_modules

    project_dir = payload.get("project_dir")
    if project_dir and (Path(project_dir) / ".daedalus.yaml").is_file():
        load_project_modules(Path(project_dir))
        return
    load_project_modules(temp_dir)  # plugins (entry points) only: no project file up from here
    for name in payload.get("project_modules") or []:
        import_user_module(name, what=f"module '{name}' of the driver's .daedalus.yaml")


def pack_run(folder: Path) -> bytes:
    """A run folder as tar.gz bytes, every member under the folder's name.

    Refuses (DaedalusError) a symlink or anything that is neither a plain file nor a folder,
    so that nothing from outside the folder can travel with it.
    """
    folder = Path(folder)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        tar.add(folder, arcname=folder.name, recursive=False)
        for root, dirs, names in os.walk(folder, followlinks=False):
            dirs.sort()
            for name in [*dirs, *sorted(names)]:
                path = Path(root) / name
                mode = path.lstat().st_mode
                if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    kind = "a symlink" if stat.S_ISLNK(mode) else "not a plain file or folder"
                    raise DaedalusError(f"cannot bring the run folder back: {path} is {kind}")
                tar.add(path, arcname=f"{folder.name}/{path.relative_to(folder).as_posix()}", recursive=False)
    return buffer.getvalue()
