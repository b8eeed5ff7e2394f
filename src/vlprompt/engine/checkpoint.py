"""Per-epoch training checkpoints in one safetensors file, replaced atomically.

`<run>/checkpoint/state.safetensors` holds the learned weights (`learned.*`), the optimiser's
tensors (`optim.<param index>.<name>`) and, with validation selection, the best weights so
far (`best.*`); its metadata holds, as JSON, the epoch, history, optimiser
hyper-parameters, loss-scaler state and the run's identity (config, backbone checksum,
class names) with its hash. Why one file: a single atomic rename (utils/io) means a kill
at any instant leaves the previous epoch's checkpoint or the new one, never a tensor file
of one epoch beside the metadata of another. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from ..errors import ConfigError
from ..utils.io import atomic_write_bytes, remove_stale_temp
from ..utils.tensorfile import save_tensors as save_safetensors

FORMAT = "vlprompt.checkpoint/2"
STATE = "state.safetensors"


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimiser state -> (tensors by flat name, JSON-ready rest)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for index, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(directory: Path, *, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Replace the checkpoint in `directory` by one file holding tensors and metadata."""
    blob = save_safetensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                            metadata={"format": FORMAT, "meta": json.dumps(meta, sort_keys=True)})
    atomic_write_bytes(directory / STATE, blob)


def _differences(saved: dict | None, current: dict | None) -> str:
    """`train.lr, seed` style list of the top-level and section keys that differ."""
    if not isinstance(saved, dict) or not isinstance(current, dict):
        return ""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            out.append(key)
    return ", ".join(out[:6]) + (" ..." if len(out) > 6 else "")


def _read(directory: Path) -> tuple[dict[str, torch.Tensor], dict] | None:
    path = directory / STATE
    if not path.is_file():
        return None
    damaged = ConfigError(f"checkpoint {path} is damaged; delete the folder {directory} to start the run over")
    blob = path.read_bytes()
    try:
        tensors = load_safetensors(blob)
    except (SafetensorError, ValueError):
        raise damaged from None
    header = _metadata(blob)
    if header.get("format") != FORMAT:
        raise ConfigError(f"checkpoint {path} has format {header.get('format')!r}, not {FORMAT!r} (an older "
                          f"vlprompt wrote it); delete the folder {directory} to start the run over")
    try:
        return tensors, json.loads(header["meta"])
    except (KeyError, json.JSONDecodeError):
        raise damaged from None


def _metadata(blob: bytes) -> dict:
    """The `__metadata__` of a safetensors blob (its JSON header)."""
    size = int.from_bytes(blob[:8], "little")
    try:
        return json.loads(blob[8:8 + size]).get("__metadata__") or {}
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return {}


def load_checkpoint(directory: Path, expected_config_hash: str,
                    identity: dict | None = None) -> tuple[dict[str, torch.Tensor], dict] | None:
    """(tensors, meta) of the last finished epoch, None when there is none.

    A checkpoint of another run (other config, backbone weights or class names) is a
    ConfigError naming what differs; temporary files of a killed writer are removed.
    """
    remove_stale_temp(directory, [STATE])
    loaded = _read(directory)
    if loaded is None:
        return None
    tensors, meta = loaded
    if meta.get("config_hash") != expected_config_hash:
        diff = _differences(meta.get("identity"), identity)
        raise ConfigError(f"checkpoint in {directory} belongs to a run with a different configuration"
                          + (f" ({diff} differ)" if diff else "") + "; use another --out or drop --resume")
    return tensors, meta
