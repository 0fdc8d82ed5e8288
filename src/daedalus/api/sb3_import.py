"""``daedalus import-sb3``: an SB3 / rl-zoo3 ``model.zip`` as a Daedalus run folder, without unpickling.

An SB3 zip holds ``policy.pth`` (a ``torch.save`` of the policy's ``state_dict``), optional
``pytorch_variables.pth`` (SAC's ``log_ent_coef``, ...), optimizer ``*.pth`` files, and
``data``: JSON in which every value JSON cannot hold is a base64 cloudpickle under
``":serialized:"`` next to a few readable first-level fields. :func:`read_sb3_zip` reads the
``.pth`` members with ``torch.load(weights_only=True)`` (tensors and plain containers only; a
pickle of anything else is refused) and the JSON with every ``":serialized:"`` value left
undecoded; what the policy needs (its kwargs, its class, the spaces) comes from the readable
fields, or the zip is refused with the reason. :func:`import_sb3` rebuilds the model for the
given environment, loads the weights and writes a run folder (status ``imported``) that
``daedalus evaluate`` and ``daedalus replay`` load like any other.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import socket
import sys
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daedalus.api.resolve import make_agent, validate
from daedalus.api.session import DEFAULT_RUNS_DIR, text_digest
from daedalus.config import profile_from_dict
from daedalus.errors import DaedalusError

__all__ = ["ImportResult", "SB3Zip", "UnsafeModelError", "import_sb3", "read_sb3_zip"]

#: Members an SB3 zip may hold; anything else is refused unread.
_TEXT_MEMBERS = ("data", "_stable_baselines3_version", "system_info.txt")
_PTH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.]*\.pth")
MAX_DATA_BYTES = 32 * 2**20
MAX_TENSOR_BYTES = 2 * 2**30
MAX_MEMBERS = 64
#: An imported off-policy model is rebuilt with at most this replay buffer (it is not used to act).
MAX_IMPORTED_BUFFER = 100_000

#: Policy modules -> the algorithm whose policies they hold (PPO/A2C and TD3/DDPG are told apart below).
_ALGO_BY_POLICY_MODULE = {
    "stable_baselines3.dqn.policies": "sb3:DQN",
    "stable_baselines3.sac.policies": "sb3:SAC",
    "stable_baselines3.td3.policies": "sb3:TD3",
    "sb3_contrib.tqc.policies": "sb3_contrib:TQC",
    "sb3_contrib.qrdqn.policies": "sb3_contrib:QRDQN",
    "sb3_contrib.crossq.policies": "sb3_contrib:CrossQ",
    "sb3_contrib.ars.policies": "sb3_contrib:ARS",
    "sb3_contrib.common.recurrent.policies": "sb3_contrib:RecurrentPPO",
    "sb3_contrib.common.maskable.policies": "sb3_contrib:MaskablePPO",
}


class UnsafeModelError(DaedalusError):
    """An SB3 zip that cannot be read without running code from it (or is not an SB3 zip)."""


@dataclass
class SB3Zip:
    """What :func:`read_sb3_zip` could read safely from an SB3 zip."""

    path: Path
    #: ``data`` without the cloudpickled values.
    data: dict[str, Any]
    #: Readable first-level fields of each cloudpickled value (``":type:"`` included), never the pickle.
    serialized: dict[str, dict[str, Any]]
    policy_state: dict[str, Any]
    variables: dict[str, Any]
    sb3_version: str | None
    sha256: str


@dataclass
class ImportResult:
    """The run folder an import wrote."""

    run_id: str
    path: Path
    agent_id: str
    env_id: str
    policy: str
    steps: int
    config: dict[str, Any] = field(repr=False, default_factory=dict)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- reading


def read_sb3_zip(path: str | Path) -> SB3Zip:
    """Read an SB3 zip without unpickling anything; an :class:`UnsafeModelError` says why not."""
    import pickle

    import torch

    path = Path(path)
    raw = path.read_bytes()
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile:
        raise UnsafeModelError(f"{path}: not a zip file (SB3 models are saved as .zip).") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise UnsafeModelError(f"{path}: {len(infos)} members, more than an SB3 zip holds ({MAX_MEMBERS}); refused.")
        names = [info.filename for info in infos]
        unexpected = [n for n in names if n not in _TEXT_MEMBERS and not _PTH.fullmatch(n)]
        if unexpected:
            raise UnsafeModelError(
                f"{path}: unexpected members {', '.join(map(repr, unexpected))}; an SB3 zip holds data, "
                "*.pth tensors and version files only. Nothing was read."
            )
        if "policy.pth" not in names:
            raise UnsafeModelError(f"{path}: no policy.pth, so there are no weights to import (is it an SB3 model zip?).")
        if "data" not in names:
            raise UnsafeModelError(f"{path}: no 'data' member, so the algorithm's settings are unknown.")

        def member(name: str, limit: int) -> bytes:
            info = archive.getinfo(name)
            if info.file_size > limit:
                raise UnsafeModelError(f"{path}: {name} is {info.file_size:,} bytes, more than the {limit:,} allowed.")
            with archive.open(info) as handle:
                content = handle.read(limit + 1)
            if len(content) > limit:
                raise UnsafeModelError(f"{path}: {name} is larger than the {limit:,} bytes allowed.")
            return content

        def tensors(name: str) -> dict[str, Any]:
            try:
                loaded = torch.load(io.BytesIO(member(name, MAX_TENSOR_BYTES)), map_location="cpu", weights_only=True)
            except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, AttributeError, TypeError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise UnsafeModelError(
                    f"{path}: {name} is not plain tensors: torch.load(weights_only=True) refused it ({first}). "
                    "Loading it would unpickle arbitrary objects, which Daedalus never does; the zip is refused."
                ) from None
            if not isinstance(loaded, Mapping) or not all(
                isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
            ):
                raise UnsafeModelError(f"{path}: {name} does not hold a mapping of names to tensors; refused.")
            return dict(loaded)

        policy_state = tensors("policy.pth")
        variables = tensors("pytorch_variables.pth") if "pytorch_variables.pth" in names else {}
        try:
            data = json.loads(member("data", MAX_DATA_BYTES).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise UnsafeModelError(f"{path}: 'data' is not JSON ({type(exc).__name__}); refused.") from None
        if not isinstance(data, dict):
            raise UnsafeModelError(f"{path}: 'data' is not a JSON object; refused.")
        version = member("_stable_baselines3_version", 1024).decode("utf-8", "replace").strip() if "_stable_baselines3_version" in names else None
    plain: dict[str, Any] = {}
    serialized: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if isinstance(value, dict) and ":serialized:" in value:
            # The pickle itself is never decoded; only the readable fields SB3 wrote beside it.
            serialized[key] = {k: v for k, v in value.items() if k != ":serialized:"}
        else:
            plain[key] = value
    return SB3Zip(path, plain, serialized, policy_state, variables, version, hashlib.sha256(raw).hexdigest())


# --------------------------------------------------------------------------- what the zip describes


def infer_algorithm(model: SB3Zip) -> str:
    """The SB3 id of the algorithm that saved ``model`` (from its policy's module), or an error asking for ``--algo``."""
    module = model.serialized.get("policy_class", {}).get("__module__")
    if module == "stable_baselines3.common.policies":
        if "cg_max_steps" in model.data:
            return "sb3_contrib:TRPO"
        return "sb3:PPO" if "n_epochs" in model.data else "sb3:A2C"
    if module == "stable_baselines3.td3.policies" and model.data.get("policy_delay") == 1:
        return "sb3:DDPG"
    if isinstance(module, str) and module in _ALGO_BY_POLICY_MODULE:
        return _ALGO_BY_POLICY_MODULE[module]
    raise UnsafeModelError(
        f"{model.path}: cannot tell which algorithm saved it (policy module {module!r}). "
        "Name it with --algo, e.g. --algo PPO or --algo sb3_contrib:TQC."
    )


def _policy_name(model: SB3Zip, algo: type) -> str:
    """The alias (MlpPolicy, CnnPolicy, ...) of the zip's policy class, read from its readable fields."""
    readable = model.serialized.get("policy_class", {})
    match = re.match(r"<function (\w+)\.__init__ ", str(readable.get("__init__", "")))
    aliases: dict[str, Any] = getattr(algo, "policy_aliases", {}) or {}
    if match:
        for alias, policy_class in aliases.items():
            if policy_class.__name__ == match.group(1):
                return alias
    return "MlpPolicy"


_CONSTANT = re.compile(r"ConstantSchedule\(val=([-+0-9.eE]+|inf)\)")
_TORCH_CLASS = re.compile(r"<class 'torch\.(nn\.modules|optim)\.\w+\.(\w+)'>")


def _policy_kwargs(model: SB3Zip) -> dict[str, Any]:
    """``policy_kwargs`` as plain YAML: activation and optimizer classes through the fixed tables."""
    from daedalus.agents.sb3 import ACTIVATIONS, OPTIMIZERS

    if "policy_kwargs" in model.data:
        value = model.data["policy_kwargs"]
        return dict(value) if isinstance(value, dict) else {}
    readable = {k: v for k, v in model.serialized.get("policy_kwargs", {}).items() if k != ":type:"}
    by_class = {**{v: k for k, v in ACTIVATIONS.items()}, **{v: k for k, v in OPTIMIZERS.items()}}
    out: dict[str, Any] = {}
    for key, value in readable.items():
        if isinstance(value, str) and value.startswith("<"):
            match = _TORCH_CLASS.fullmatch(value)
            name = by_class.get(match.group(2)) if match else None
            table = ACTIVATIONS if key == "activation_fn" else OPTIMIZERS if key == "optimizer_class" else None
            if name is None or table is None or name not in table:
                raise UnsafeModelError(
                    f"{model.path}: policy_kwargs.{key} is {value}, stored only as a pickle. Daedalus rebuilds "
                    f"activation functions ({', '.join(ACTIVATIONS)}) and optimizers ({', '.join(OPTIMIZERS)}) "
                    "from their names and never unpickles anything else; this model cannot be imported."
                )
            value = name
        out[key] = value
    return out


def zip_space(model: SB3Zip, key: str) -> Any | None:
    """A space from the readable fields SB3 wrote beside its pickle (None when they do not suffice)."""
    import numpy as np
    from gymnasium import spaces

    readable = model.serialized.get(key)
    if not readable:
        return None
    kind = str(readable.get(":type:", ""))
    try:
        if kind.endswith("spaces.discrete.Discrete'>"):
            return spaces.Discrete(int(readable["n"]), start=int(readable.get("start", 0)))
        if kind.endswith("spaces.box.Box'>"):
            shape = tuple(int(s) for s in readable["_shape"])
            low, high = _array(readable["low"], shape), _array(readable["high"], shape)
            if low is None or high is None:
                return None
            dtype: Any = np.dtype(str(readable["dtype"]))
            return spaces.Box(low=low.astype(dtype), high=high.astype(dtype), shape=shape, dtype=dtype)
        if kind.endswith("spaces.multi_discrete.MultiDiscrete'>"):
            nvec = _array(readable["nvec"], tuple(int(s) for s in readable["_shape"]))
            return None if nvec is None else spaces.MultiDiscrete(nvec.astype("int64"))
        if kind.endswith("spaces.multi_binary.MultiBinary'>"):
            n = readable["n"]
            return spaces.MultiBinary(n if isinstance(n, int | list) else int(n))
    except (KeyError, TypeError, ValueError):
        return None
    return None


def _array(text: Any, shape: tuple[int, ...]) -> Any:
    """numpy's ``str(array)`` back to an array (None when numpy abbreviated it with '...')."""
    import numpy as np

    if not isinstance(text, str) or "..." in text:
        return None
    values = [float(v) for v in text.replace("[", " ").replace("]", " ").split()]
    if len(values) != math.prod(shape):
        return None
    return np.asarray(values).reshape(shape)


def _constructor_config(model: SB3Zip, config_class: type, notes: list[str]) -> dict[str, Any]:
    """The constructor arguments the zip holds as plain JSON (pickled ones keep their defaults)."""
    import dataclasses

    from daedalus.agents.sb3 import SB3RunConfig

    own = {f.name for f in dataclasses.fields(SB3RunConfig)}
    skip = {"policy", "policy_kwargs", "seed", "device", "tensorboard_log", "verbose", "rollout_buffer_class", "replay_buffer_class"}
    out: dict[str, Any] = {}
    for config_field in dataclasses.fields(config_class):
        name = config_field.name
        if name in own or name in skip:
            continue
        if name in model.data:
            out[name] = model.data[name]
        elif name in model.serialized:
            # A constant schedule shows its value in the readable fields: FloatSchedule(ConstantSchedule(val=0.2)).
            constant = _CONSTANT.fullmatch(str(model.serialized[name].get("value_schedule", "")))
            if constant:
                out[name] = float(constant.group(1))
            else:
                notes.append(f"{name}: stored only as a pickle, left at its default")
    if isinstance(out.get("buffer_size"), int) and out["buffer_size"] > MAX_IMPORTED_BUFFER:
        notes.append(f"buffer_size: {out['buffer_size']} -> {MAX_IMPORTED_BUFFER} (the replay buffer is not imported)")
        out["buffer_size"] = MAX_IMPORTED_BUFFER
    return out


# --------------------------------------------------------------------------- the import


def import_sb3(
    path: str | Path,
    env_id: str,
    *,
    algo: str | None = None,
    env_args: Mapping[str, Any] | None = None,
    output: str | Path | None = None,
    runs_dir: str | Path = DEFAULT_RUNS_DIR,
    name: str | None = None,
    seed: int = 0,
) -> ImportResult:
    """Import an SB3 zip as a run folder of ``sb3:ALGO`` on ``env_id`` (status ``imported``).

    ``algo`` (``PPO``, ``sb3:PPO`` or ``sb3_contrib:TQC``) is inferred from the zip when
    omitted. ``output`` is the run folder to create (it must not exist); otherwise a folder
    ``<name>-<time>`` is made in ``runs_dir``. Nothing in the zip is unpickled: see
    :func:`read_sb3_zip`. Refuses (UnsafeModelError, ProfileError) with the reason.
    """
    from daedalus.agents.sb3 import sb3_agent_spec
    from daedalus.registry import is_sb3_id
    from daedalus.runs.store import RunFolder

    model = read_sb3_zip(path)
    agent_id = algo if algo is None or is_sb3_id(algo) else f"sb3:{algo}"
    agent_id = agent_id or infer_algorithm(model)
    spec = sb3_agent_spec(agent_id)
    assert spec.config_class is not None
    algo_class = spec.config_class.algo_class  # type: ignore[attr-defined]
    notes: list[str] = []
    steps = model.data.get("num_timesteps")
    steps = steps if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0 else 0
    config = {
        "policy": _policy_name(model, algo_class),
        "policy_kwargs": _policy_kwargs(model),
        **_constructor_config(model, spec.config_class, notes),
        "total_steps": max(steps, 1),
    }
    profile_id = name or (Path(output).name if output is not None else f"{agent_id.partition(':')[2].lower()}-{_safe(env_id)}-imported")
    profile = profile_from_dict(profile_id, {
        "agent_id": agent_id, "env_id": env_id, "env_args": dict(env_args or {}), "seed": seed, "num_envs": 1,
        "device": "cpu", "config": config,
    })
    resolved = validate(profile)
    for key in ("observation_space", "action_space"):
        described = zip_space(model, key)
        actual = getattr(resolved, key)
        if described is not None and described != actual:
            raise UnsafeModelError(
                f"{model.path}: the model was saved for {key} {described}, but '{env_id}' has {actual}. "
                "Pass the environment it was trained on with --env."
            )
    agent = make_agent(resolved)
    try:
        agent.model.policy.load_state_dict(model.policy_state, strict=True)
    except RuntimeError as exc:
        raise UnsafeModelError(
            f"{model.path}: its policy.pth does not fit {agent_id} with policy {config['policy']} and policy_kwargs "
            f"{config['policy_kwargs']} on '{env_id}': {str(exc).splitlines()[0]}. Check --algo and --env."
        ) from None
    import torch

    wanted = set(agent._variable_names())
    with torch.no_grad():
        for key, value in model.variables.items():
            if key in wanted:
                getattr(agent.model, key).copy_(value)
            else:
                notes.append(f"pytorch_variables.pth: '{key}' is not a variable of {agent_id}; ignored")
    agent.global_step = steps
    agent.model.num_timesteps = steps
    for counter, key in (("num_episodes", "_episode_num"), ("num_updates", "_n_updates")):
        value = model.data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            setattr(agent, counter, value)
    notes.append("optimizer state (*.optimizer.pth) not imported: the weights are, for evaluation and as a starting point")
    import yaml

    text = yaml.safe_dump({profile.profile_id: resolved.resolved_dict()}, sort_keys=False)
    record = {
        "agent_id": agent_id, "env_id": env_id, "seed": seed, "batch_id": None, "profile_sha256": text_digest(text),
    }
    folder = _create_folder(Path(output), profile_id, record, text) if output is not None else RunFolder.create(Path(runs_dir), profile_id, record, text)
    folder.save_checkpoint(agent, "final", steps)
    now = time.time()
    folder.update(
        status="imported", steps=steps, finished_at=now, duration_s=0.0, last_checkpoint="final", checkpoint_format="safetensors",
        imported_from={
            "file": str(Path(path).resolve()), "sha256": model.sha256, "sb3_version": model.sb3_version,
            "algorithm": agent_id, "policy": config["policy"], "notes": notes,
        },
    )
    return ImportResult(folder.run_id, folder.path, agent_id, env_id, config["policy"], steps, config, notes)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _create_folder(path: Path, profile_id: str, record: dict[str, Any], profile_yaml: str) -> Any:
    """A run folder at exactly ``path`` (which must not exist), indexed in its parent folder."""
    from daedalus.runs.io import atomic_write_json, atomic_write_text
    from daedalus.runs.store import PROFILE_FILE, RUN_FILE, RunFolder, versions

    if path.exists():
        raise DaedalusError(f"{path} already exists; name a new folder with -o, or leave -o out to make one in --runs-dir.")
    path.mkdir(parents=True)
    atomic_write_text(path / PROFILE_FILE, profile_yaml)
    now = time.time()
    atomic_write_json(path / RUN_FILE, {
        "run_id": path.name, "path": str(path.resolve()), "profile_id": profile_id, "status": "running",
        "pid": os.getpid(), "host": socket.gethostname(), "started_at": now,
        "started_at_iso": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)), "finished_at": None,
        "duration_s": None, "steps": 0, "best_return": None, "final_return": None, "versions": versions(),
        "command": sys.argv, **record,
    })
    folder = RunFolder(path)
    folder.update()  # into the index of the parent folder
    return folder
