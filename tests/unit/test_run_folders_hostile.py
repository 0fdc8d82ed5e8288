"""Run folders as users leave them: hand-edited or damaged run.json and meta.json files,
leftovers of killed processes, run ids that look like paths, and signals mid-save.

Every case asserts the exact record or file layout a user finds, so a regression to a
traceback, a silently dropped run or a stray temporary folder fails here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from daedalus.errors import RunError
from daedalus.runs import store
from daedalus.runs.index import COLUMNS, RunIndex, validate_record
from daedalus.runs.store import RunFolder, list_runs, load_checkpoint_into, pid_alive, resolve_run
from tests.unit.test_runs import BytesAgent

RESTORE_HINT = "Restore run.json from a backup"


def _new_run(runs_dir: Path, profile_id: str) -> RunFolder:
    return RunFolder.create(
        runs_dir, profile_id, {"agent_id": "a", "env_id": "e", "seed": 7}, "p: {}\n"
    )


def _good_runs(runs_dir: Path) -> dict[str, RunFolder]:
    """Three ordinary runs: alpha completed, alpha failed, beta completed."""
    done = _new_run(runs_dir, "alpha")
    done.finish("completed", steps=50, best_return=2.5, final_return=2.0)
    failed = _new_run(runs_dir, "alpha")
    failed.finish("failed", error={"type": "ValueError", "message": "boom"}, steps=3)
    beta = _new_run(runs_dir, "beta")
    beta.finish("completed", steps=9, best_return=None, final_return=-1.0)
    return {"done": done, "failed": failed, "beta": beta}


def _template(runs_dir: Path, name: str) -> dict[str, Any]:
    """A complete, valid run.json for a folder ``name``, to be damaged one field at a time.

    Its path is stale, as in a folder copied from elsewhere: a corrupt record must still
    point at the folder to repair.
    """
    return {
        "run_id": name,
        "path": f"/elsewhere/{name}",
        "profile_id": "alpha",
        "agent_id": "a",
        "env_id": "e",
        "status": "completed",
        "pid": 12345,
        "host": "elsewhere",
        "seed": 7,
        "started_at": 1000.0,
        "finished_at": 1010.0,
        "steps": 5,
        "best_return": 1.0,
        "final_return": 1.0,
    }


def _write_bad(runs_dir: Path, name: str, text: str) -> Path:
    folder = runs_dir / name
    folder.mkdir()
    (folder / "run.json").write_text(text, encoding="utf-8")
    return folder


def _damaged(runs_dir: Path, name: str, **changes: Any) -> str:
    return json.dumps({**_template(runs_dir, name), **changes})


# Folder name -> (run.json text builder, pieces the corrupt error message must contain).
BAD: dict[str, tuple[Callable[[Path, str], str], list[str]]] = {
    "bad-a-not-json": (lambda d, n: '{"run_id": "bad-a-not-json", ', ["not valid JSON"]),
    "bad-b-list": (lambda d, n: "[1, 2, 3]", ["not a JSON object (the top level is a list)"]),
    "bad-c-profile-list": (
        lambda d, n: _damaged(d, n, profile_id=["a"]),
        ["'profile_id' is a list (['a']), expected a string"],
    ),
    "bad-d-steps-2-70": (
        lambda d, n: _damaged(d, n, steps=2**70),
        ["'steps' is 1180591620717411303424, outside the signed 64-bit integer range"],
    ),
    "bad-e-started-yesterday": (
        lambda d, n: _damaged(d, n, started_at="yesterday"),
        ["'started_at' is a string ('yesterday'), expected a number"],
    ),
    "bad-f-nan-inf": (
        lambda d, n: _damaged(d, n, started_at=float("nan"), finished_at=float("inf")),
        [
            "'started_at' is nan, expected a finite number",
            "'finished_at' is inf, expected a finite number",
        ],
    ),
    "bad-g-wrong-run-id": (
        lambda d, n: _damaged(d, n, run_id="someone-else"),
        ["'run_id' is 'someone-else' but the folder is named 'bad-g-wrong-run-id'"],
    ),
    "bad-h-surrogate": (
        lambda d, n: _damaged(d, n, env_id="\ud800"),
        ["'env_id' contains characters that are not valid UTF-8"],
    ),
    "bad-i-deep": (lambda d, n: "[" * 100_000 + "]" * 100_000, ["not valid JSON"]),
    "bad-j-running-huge-pid": (
        lambda d, n: _damaged(d, n, status="running", pid=2**70, host="HOST"),
        ["'pid' is 1180591620717411303424, outside the signed 64-bit integer range"],
    ),
    "bad-k-pid-string": (
        lambda d, n: _damaged(d, n, status="running", pid="123", host="HOST"),
        ["'pid' is a string ('123'), expected an integer"],
    ),
    "bad-l-error-string": (
        lambda d, n: _damaged(d, n, status="failed", error="boom"),
        ["'error' is a string ('boom'), expected an object"],
    ),
    "bad-m-steps-bool": (
        lambda d, n: _damaged(d, n, steps=True),
        ["'steps' is a boolean (True), expected an integer"],
    ),
    "bad-n-no-started-at": (
        lambda d, n: json.dumps({k: v for k, v in _template(d, n).items() if k != "started_at"}),
        ["'started_at' is missing"],
    ),
}


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, dict[str, RunFolder], list[dict[str, Any]]]:
    """A runs folder with three good runs and every damaged folder of ``BAD``.

    Returns (runs dir, good folders, listing of the good runs before damage arrived).
    """
    import socket

    runs_dir = tmp_path / "runs"
    good = _good_runs(runs_dir)
    baseline = list_runs(runs_dir)
    for name, (build, _) in BAD.items():
        text = build(runs_dir, name).replace('"HOST"', json.dumps(socket.gethostname()))
        _write_bad(runs_dir, name, text)
    return runs_dir, good, baseline


def _check_listing(
    runs_dir: Path, good: dict[str, RunFolder], baseline: list[dict[str, Any]]
) -> None:
    rows = list_runs(runs_dir)
    assert len(rows) == 3 + len(BAD)
    for row in rows:
        assert set(row) - {"error"} == set(COLUMNS)
    by_id = {r["run_id"]: r for r in rows}
    # The good runs come back exactly as before the damaged folders appeared.
    assert [r for r in rows if r["status"] != "corrupt"] == baseline
    assert [r["run_id"] for r in baseline] == [f.run_id for f in good.values()]
    assert by_id[good["done"].run_id]["steps"] == 50
    assert by_id[good["done"].run_id]["final_return"] == 2.0
    for name, (_, pieces) in BAD.items():
        row = by_id[name]
        assert row["status"] == "corrupt", name
        assert row["path"] == os.path.abspath(runs_dir / name)
        assert row["error"]["type"] == "corrupt"
        message = row["error"]["message"]
        assert message.startswith(f"{runs_dir / name / 'run.json'}: "), message
        for piece in pieces:
            assert piece in message, (name, message)
        assert RESTORE_HINT in message
    # Fields that are fine stay readable in a corrupt record.
    assert by_id["bad-d-steps-2-70"]["steps"] is None
    assert by_id["bad-d-steps-2-70"]["profile_id"] == "alpha"
    assert by_id["bad-c-profile-list"]["profile_id"] is None
    assert by_id["bad-c-profile-list"]["steps"] == 5
    assert by_id["bad-b-list"]["started_at"] is None


def test_damaged_run_json_is_listed_as_corrupt(
    hostile: tuple[Path, dict[str, RunFolder], list[dict[str, Any]]],
) -> None:
    runs_dir, good, baseline = hostile
    _check_listing(runs_dir, good, baseline)  # first call: the damaged folders are new to the index
    _check_listing(runs_dir, good, baseline)  # second call: read back from the populated index


def test_index_rebuilt_with_damaged_folders(
    hostile: tuple[Path, dict[str, RunFolder], list[dict[str, Any]]],
) -> None:
    runs_dir, good, baseline = hostile
    for file in runs_dir.glob("index.sqlite*"):
        file.unlink()
    _check_listing(runs_dir, good, baseline)
    stored = {r["run_id"]: r["status"] for r in RunIndex(runs_dir).rows()}
    assert stored["bad-d-steps-2-70"] == "corrupt"
    assert stored[good["done"].run_id] == "completed"


def test_filters_with_corrupt_runs(
    hostile: tuple[Path, dict[str, RunFolder], list[dict[str, Any]]],
) -> None:
    runs_dir, good, _ = hostile
    completed = [r["run_id"] for r in list_runs(runs_dir, status="completed")]
    assert completed == [good["done"].run_id, good["beta"].run_id]
    assert [r["run_id"] for r in list_runs(runs_dir, profile_id="beta")] == [good["beta"].run_id]
    assert [r["run_id"] for r in list_runs(runs_dir, profile_id="alpha", status="failed")] == [
        good["failed"].run_id
    ]
    assert sorted(r["run_id"] for r in list_runs(runs_dir, status="corrupt")) == sorted(BAD)
    # Damaged runs whose profile is readable are still found by profile.
    alpha_corrupt = {r["run_id"] for r in list_runs(runs_dir, profile_id="alpha", status="corrupt")}
    assert "bad-d-steps-2-70" in alpha_corrupt and "bad-c-profile-list" not in alpha_corrupt
    assert list_runs(runs_dir, status="running") == []


def test_repaired_run_json_is_listed_again(
    hostile: tuple[Path, dict[str, RunFolder], list[dict[str, Any]]],
) -> None:
    runs_dir, _, _ = hostile
    assert {r["run_id"]: r["status"] for r in list_runs(runs_dir)}["bad-d-steps-2-70"] == "corrupt"
    (runs_dir / "bad-d-steps-2-70" / "run.json").write_text(
        _damaged(runs_dir, "bad-d-steps-2-70", steps=12)
    )
    row = {r["run_id"]: r for r in list_runs(runs_dir)}["bad-d-steps-2-70"]
    assert (row["status"], row["steps"]) == ("completed", 12)
    assert row["path"] == "/elsewhere/bad-d-steps-2-70"  # a good run.json's path is kept
    assert "error" not in row


def test_refresh_status_and_read_on_damaged_runs(
    hostile: tuple[Path, dict[str, RunFolder], list[dict[str, Any]]],
) -> None:
    runs_dir, _, _ = hostile
    for name in ("bad-a-not-json", "bad-b-list", "bad-i-deep"):
        with pytest.raises(RunError, match=f"{name}/run.json: not .*{RESTORE_HINT}"):
            RunFolder(runs_dir / name).refresh_status()
    for name in ("bad-j-running-huge-pid", "bad-k-pid-string"):
        file = runs_dir / name / "run.json"
        before = file.read_text()
        data = RunFolder(runs_dir / name).refresh_status()
        assert data["status"] == "running"  # not judged from a pid that cannot be read
        assert file.read_text() == before  # and a damaged run.json is never rewritten
    data = RunFolder(runs_dir / "bad-e-started-yesterday").refresh_status()
    assert data["started_at"] == "yesterday"


def test_describe_problems(
    hostile: tuple[Path, dict[str, RunFolder], list[dict[str, Any]]],
) -> None:
    runs_dir, good, _ = hostile
    assert good["done"].describe_problems() == []
    file = runs_dir / "bad-f-nan-inf" / "run.json"
    assert RunFolder(file.parent).describe_problems() == [
        f"{file}: 'started_at' is nan, expected a finite number.",
        f"{file}: 'finished_at' is inf, expected a finite number.",
    ]
    (only,) = RunFolder(runs_dir / "bad-b-list").describe_problems()
    assert (
        only
        == f"{runs_dir / 'bad-b-list' / 'run.json'}: not a JSON object (the top level is a list)."
    )
    empty = runs_dir / "empty"
    empty.mkdir()
    assert RunFolder(empty).describe_problems() == [f"{empty}: not a run folder (no run.json)."]


def test_cli_lists_damaged_runs(
    hostile: tuple[Path, dict[str, RunFolder], list[dict[str, Any]]],
) -> None:
    runs_dir, good, _ = hostile
    env = {**os.environ, "DAEDALUS_PROGRESS": "plain"}
    cmd = [sys.executable, "-m", "daedalus", "runs", "list", "--runs-dir", str(runs_dir)]
    table = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert table.returncode == 0, table.stderr
    assert "Traceback" not in table.stderr
    for name in BAD:
        (line,) = [line for line in table.stdout.splitlines() if line.split()[:1] == [name]]
        assert line.split()[-1] == "corrupt", line
    (line,) = [
        line for line in table.stdout.splitlines() if line.split()[:1] == [good["done"].run_id]
    ]
    assert line.split()[-1] == "completed"

    listed = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=120, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    rows = json.loads(listed.stdout)
    statuses = {r["run_id"]: r["status"] for r in rows}
    assert statuses == {
        **{n: "corrupt" for n in BAD},
        **{
            f.run_id: s
            for f, s in zip(good.values(), ["completed", "failed", "completed"], strict=True)
        },
    }


def test_undecodable_folder_name_does_not_break_listing(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    good = _new_run(runs_dir, "alpha")
    weird = os.fsencode(runs_dir) + b"/caf\xe9"  # Latin-1 bytes: not a UTF-8 name
    os.mkdir(weird)
    with open(weird + b"/run.json", "w") as handle:
        handle.write("{}")
    assert [r["run_id"] for r in list_runs(runs_dir)] == [good.run_id]


def test_nan_returns_of_a_diverged_run_are_not_corruption(tmp_path: Path) -> None:
    folder = _new_run(tmp_path, "alpha")
    folder.finish("completed", best_return=float("nan"), final_return=float("-inf"))
    assert "NaN" in (folder.path / "run.json").read_text()
    (row,) = list_runs(tmp_path)
    assert (row["status"], row["best_return"], row["final_return"]) == ("completed", None, None)


def test_validate_record_types() -> None:
    row, problems = validate_record(
        {
            "run_id": "r",
            "path": "/x",
            "status": "completed",
            "started_at": 3,
            "pid": 2**63 - 1,
            "seed": -(2**63),
        }
    )
    assert problems == []
    assert (row["started_at"], row["pid"], row["seed"]) == (3.0, 2**63 - 1, -(2**63))
    assert isinstance(row["started_at"], float)
    row, problems = validate_record(
        {"run_id": "r", "path": "/x", "status": "done", "started_at": 1.0, "seed": 2**63}
    )
    assert problems == ["'seed' is 9223372036854775808, outside the signed 64-bit integer range"]
    assert row["status"] == "corrupt" and row["seed"] is None
    row, problems = validate_record(
        {"run_id": "r", "path": "/x", "status": "corrupt", "started_at": 1.0}
    )
    assert problems == ["'status' is 'corrupt', which is not a status a run is saved with"]


def test_upsert_never_passes_bad_values_to_sqlite(tmp_path: Path) -> None:
    index = RunIndex(tmp_path)
    stored = index.upsert(
        {
            "run_id": "r",
            "path": "/x",
            "status": "running",
            "started_at": 1.0,
            "steps": 2**70,
            "host": ["h"],
        }
    )
    assert stored["status"] == "corrupt"
    assert index.rows() == [
        {
            **{c: None for c in COLUMNS},
            "run_id": "r",
            "path": "/x",
            "status": "corrupt",
            "started_at": 1.0,
        }
    ]
    with pytest.raises(ValueError, match="run_id"):
        index.upsert({"path": "/x", "status": "running", "started_at": 1.0})
    with pytest.raises(ValueError, match="run_id"):
        index.upsert({"run_id": 5, "path": "/x", "status": "running", "started_at": 1.0})
    folder = tmp_path / "named"
    assert index.upsert([1, 2], folder)["run_id"] == "named"  # keyed by its folder


def test_pid_alive_guards() -> None:
    assert pid_alive(os.getpid()) is True
    for pid in (None, 0, -1, 2**31, 2**40, 2**70, "123", True, 1.0):
        assert pid_alive(pid) is False, pid


# --------------------------------------------------------------------------- checkpoints


def _meta(step: Any = 1, fmt: Any = "bytes", saved_at: Any = 100.0) -> str:
    return json.dumps({"name": "x", "step": step, "format": fmt, "saved_at": saved_at})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (_meta(step="ten"), "'step' is a string ('ten'), expected an integer"),
        (
            _meta(step=2**70),
            "'step' is 1180591620717411303424, outside the signed 64-bit integer range",
        ),
        (_meta(fmt=5), "'format' is a number (5), expected a string"),
        (_meta(saved_at="now"), "'saved_at' is a string ('now'), expected a number"),
        (_meta(saved_at=float("nan")), "'saved_at' is nan, expected a finite number"),
        ("[1]", "not a JSON object"),
        ("{nope", "unreadable (JSONDecodeError)"),
    ],
)
def test_hostile_checkpoint_meta_is_skipped_and_reported(
    tmp_path: Path, text: str, problem: str
) -> None:
    folder = _new_run(tmp_path, "alpha")
    folder.save_checkpoint(BytesAgent(b"ok"), "step-1", 1)
    bad = folder.checkpoints_dir / "step-2"
    bad.mkdir()
    (bad / "agent.bin").write_bytes(b"?")
    (bad / "meta.json").write_text(text)
    assert [c.name for c in folder.checkpoints()] == ["step-1"]
    assert folder.checkpoint().name == "step-1"
    assert folder.describe_problems() == [
        f"{bad / 'meta.json'}: {problem}; the checkpoint is ignored."
    ]


def test_old_checkpoint_meta_without_fields_still_loads(tmp_path: Path) -> None:
    folder = _new_run(tmp_path, "alpha")
    old = folder.checkpoints_dir / "legacy"
    old.mkdir(parents=True)
    (old / "agent.bin").write_bytes(b"legacy")
    (old / "meta.json").write_text('{"format": "bytes"}')
    (info,) = folder.checkpoints()
    assert (info.name, info.step, info.saved_at) == ("legacy", 0, 0.0)
    assert load_checkpoint_into(BytesAgent(), info).value == b"legacy"


def _listing(folder: RunFolder) -> list[str]:
    return sorted(p.name for p in folder.checkpoints_dir.iterdir())


class _Renames:
    """``os.rename`` that runs ``action`` before call number ``at`` (1-based)."""

    def __init__(self, at: int, action: Callable[[], None]) -> None:
        self.at = at
        self.action = action
        self.calls: list[tuple[str, str]] = []
        self.real = os.rename

    def __call__(self, src: Any, dst: Any) -> None:
        self.calls.append((Path(src).name, Path(dst).name))
        if len(self.calls) == self.at:
            self.action()
        self.real(src, dst)


def _raise_interrupt() -> None:
    raise KeyboardInterrupt


def test_interrupt_between_renames_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _new_run(tmp_path, "alpha")
    folder.save_checkpoint(BytesAgent(b"previous"), "final", 1)
    renames = _Renames(2, _raise_interrupt)  # final -> .old-* done, .tmp-* -> final interrupted
    monkeypatch.setattr(os, "rename", renames)
    with pytest.raises(KeyboardInterrupt):
        folder.save_checkpoint(BytesAgent(b"new"), "final", 2)
    monkeypatch.undo()
    assert _listing(folder) == ["final"]
    assert len(renames.calls) == 3
    assert renames.calls[0][1].startswith(".old-final-")
    assert renames.calls[2] == (renames.calls[0][1], "final")  # the roll-back
    (info,) = folder.checkpoints()
    assert (info.name, info.step) == ("final", 1)
    assert load_checkpoint_into(BytesAgent(), info).value == b"previous"


def test_failure_of_first_rename_keeps_the_old_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _new_run(tmp_path, "alpha")
    folder.save_checkpoint(BytesAgent(b"previous"), "final", 1)

    def fail() -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", _Renames(1, fail))
    with pytest.raises(OSError, match="No space"):
        folder.save_checkpoint(BytesAgent(b"new"), "final", 2)
    monkeypatch.undo()
    assert _listing(folder) == ["final"]
    assert load_checkpoint_into(BytesAgent(), folder.checkpoint()).value == b"previous"


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """SIGINT raising KeyboardInterrupt, as in the CLI, whatever the test runner installed."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_signal_during_the_swap_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, python_sigint: None
) -> None:
    folder = _new_run(tmp_path, "alpha")
    folder.save_checkpoint(BytesAgent(b"previous"), "final", 1)
    renames = _Renames(1, lambda: os.kill(os.getpid(), signal.SIGINT))
    monkeypatch.setattr(os, "rename", renames)
    with pytest.raises(KeyboardInterrupt):
        folder.save_checkpoint(BytesAgent(b"new"), "final", 2)
    monkeypatch.undo()
    # The Ctrl-C arrived after the old folder was moved aside; it was held until the new
    # snapshot was in place and the old one deleted.
    assert len(renames.calls) == 2
    assert _listing(folder) == ["final"]
    assert load_checkpoint_into(BytesAgent(), folder.checkpoint()).value == b"new"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_signals_deferred_holds_and_then_delivers(python_sigint: None) -> None:
    # Another thread may be the one the kernel hands the signal to (torch starts several).
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait, daemon=True)
    helper.start()
    reached = []
    try:
        with pytest.raises(KeyboardInterrupt), store._signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            reached.append("end of block")
    finally:
        stop.set()
        helper.join(5)
    assert reached == ["end of block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_signals_deferred_restores_handlers_without_signal(python_sigint: None) -> None:
    term = signal.getsignal(signal.SIGTERM)
    with store._signals_deferred():
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == term


def test_save_from_a_thread(tmp_path: Path) -> None:
    folder = _new_run(tmp_path, "alpha")
    errors: list[BaseException] = []

    def save() -> None:
        try:
            folder.save_checkpoint(BytesAgent(b"threaded"), "final", 3)
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    thread = threading.Thread(target=save)
    thread.start()
    thread.join(30)
    assert errors == []
    assert _listing(folder) == ["final"]
    assert load_checkpoint_into(BytesAgent(), folder.checkpoint()).value == b"threaded"


def test_stale_folders_of_a_killed_process_are_removed(tmp_path: Path) -> None:
    folder = _new_run(tmp_path, "alpha")
    folder.save_checkpoint(BytesAgent(b"fin"), "final", 5)
    folder.save_checkpoint(BytesAgent(b"gone"), "gone", 4)
    ckpt = folder.checkpoints_dir
    # What SIGKILL can leave: a half-written temp folder, a moved-aside copy of a checkpoint
    # that is complete again, a half-deleted one, and the only copy of 'gone'.
    (ckpt / ".tmp-x").mkdir()
    (ckpt / ".tmp-x" / "agent.bin").write_bytes(b"partial")
    (ckpt / ".tmp-step-9-12345678").mkdir()
    os.rename(ckpt / "gone", ckpt / ".old-gone-1234")
    (ckpt / ".old-final-abcd").mkdir()
    (ckpt / ".old-final-abcd" / "meta.json").write_text(_meta(step=1))
    (ckpt / ".old-half-ffff").mkdir()
    (ckpt / ".old-half-ffff" / "agent.bin").write_bytes(b"?")
    assert [c.name for c in folder.checkpoints()] == ["final", "gone"]

    folder.save_checkpoint(BytesAgent(b"s6"), "step-6", 6)
    assert _listing(folder) == [".old-gone-1234", "final", "step-6"]
    assert load_checkpoint_into(BytesAgent(), folder.checkpoint("gone")).value == b"gone"

    folder.save_checkpoint(BytesAgent(b"gone2"), "gone", 7)  # the orphan is superseded
    assert _listing(folder) == ["final", "gone", "step-6"]
    assert load_checkpoint_into(BytesAgent(), folder.checkpoint("gone")).value == b"gone2"


# --------------------------------------------------------------------------- resolve_run


def test_run_ids_never_leave_the_runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs_dir = tmp_path / "project" / "runs"
    inside = _new_run(runs_dir, "alpha")
    outside = _new_run(tmp_path / "elsewhere", "secret")
    (tmp_path / "project" / "run.json").write_text("{}")  # the runs dir's parent looks like a run
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    # Each of these names a run folder when joined to the runs dir, but is no path from here.
    for ref in (
        "..",
        f"../../elsewhere/{outside.run_id}",
        "../runs/../../elsewhere/" + outside.run_id,
    ):
        with pytest.raises(RunError, match="no run"):
            resolve_run(ref, runs_dir)
    for ref in ("*", "[a]*", "", "al\0"):
        with pytest.raises(RunError, match="no run"):
            resolve_run(ref, runs_dir)
    # A path the user gives that is a run folder is still a path; ids and prefixes still work.
    assert resolve_run(str(outside.path), runs_dir).path == outside.path
    assert (
        resolve_run(f"../elsewhere/{outside.run_id}", cwd / "x").path.resolve()
        == outside.path.resolve()
    )
    assert resolve_run(inside.run_id, runs_dir).path == inside.path
    assert resolve_run("alp", runs_dir).path == inside.path
    assert resolve_run(inside.run_id + "/", runs_dir).path == inside.path  # shell completion


def test_status_filter_sees_a_crash_on_the_first_listing(tmp_path: Path) -> None:
    alive = _new_run(tmp_path, "alive")
    dead = _new_run(tmp_path, "dead")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead.update(pid=proc.pid)
    # The index still says 'running'; the filter applies to what the folder turns out to be.
    assert [r["run_id"] for r in list_runs(tmp_path, status="crashed")] == [dead.run_id]
    assert [r["run_id"] for r in list_runs(tmp_path, status="running")] == [alive.run_id]
    assert json.loads((dead.path / "run.json").read_text())["status"] == "crashed"
