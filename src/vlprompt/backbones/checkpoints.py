"""Reading weight files without ever unpickling arbitrary objects or running their code.

safetensors files are read as they are; other files go through
`torch.load(weights_only=True)`, which refuses pickles that would build arbitrary Python
objects. TorchScript archives (the original `clip` package's `.pt` files) are read without
TorchScript: their `data.pkl` is unpickled by `_ScriptArchiveUnpickler`, which knows only
tensor rebuilding, storages, ordered dicts and stand-ins for the archive's module classes,
and refuses every other global; the archive's code is never loaded or run.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch

from .base import BackboneError

#: Set to 1 to load TorchScript archives with `torch.jit.load` (runs their code; trusted files only).
TRUST_TORCHSCRIPT = "VLPROMPT_TRUST_TORCHSCRIPT"
#: Storage classes a TorchScript archive may name, and their element types.
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
#: The only functions an archive's pickle may call: torch's tensor rebuilding, and
#: TorchScript's type tags on lists, which only return their value (`torch.jit._pickle`;
#: defined here so that reading needs no TorchScript module).
_ALLOWED_CALLS = {
    ("torch._utils", "_rebuild_tensor_v2"): lambda: torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): lambda: torch._utils._rebuild_parameter,
    **{("torch.jit._pickle", f"build_{kind}list"): lambda: lambda data: data
       for kind in ("int", "float", "bool", "tensor", "double")},
    ("torch.jit._pickle", "restore_type_tag"): lambda: lambda value, type_str: value,
}


class UnsafeFileError(BackboneError):
    """A file would need full unpickling (it may execute code) and is refused."""


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "module"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            if all(k.startswith("module.") for k in tensors):
                tensors = {k[len("module."):]: v for k, v in tensors.items()}
            return tensors
    raise BackboneError(f"{path} holds no state dict of tensors")


class _ScriptModule:
    """Stand-in for a class of a TorchScript archive (`__torch__.*`): keeps its attribute dict."""

    attributes: dict = {}  # noqa: RUF012 - replaced per object by __setstate__ (pickle's NEWOBJ skips __init__)

    def __setstate__(self, state: object) -> None:
        self.attributes = state if isinstance(state, dict) else {}


class _ScriptArchiveUnpickler(pickle.Unpickler):
    """Unpickles a TorchScript archive's `data.pkl` with an allowlist (see the module docstring)."""

    def __init__(self, data: bytes, read_record, path: Path):
        import io

        super().__init__(io.BytesIO(data))
        self._read_record, self._path = read_record, path

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__"):
            return _ScriptModule
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) in _ALLOWED_CALLS:
            return _ALLOWED_CALLS[module, name]()
        raise UnsafeFileError(f"refusing to load {self._path}: its TorchScript pickle names {module}.{name}, "
                              f"which a weights archive never needs (if you trust the file's source, "
                              f"{TRUST_TORCHSCRIPT}=1 loads it with torch.jit.load, which runs its code)")

    def persistent_load(self, pid: object):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], torch.dtype)):
            raise UnsafeFileError(f"refusing to load {self._path}: unknown persistent record {pid!r:.80}")
        _, dtype, key, _location, numel = pid
        raw = bytearray(self._read_record(str(key)))
        if len(raw) != numel * torch.empty((), dtype=dtype).element_size():
            raise BackboneError(f"{self._path}: tensor data {key} has {len(raw)} bytes, not {numel} values")
        untyped = torch.frombuffer(raw, dtype=torch.uint8).untyped_storage() if raw else torch.UntypedStorage(0)
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)


def _module_tensors(obj: object, prefix: str = "") -> dict[str, torch.Tensor]:
    """Parameters and buffers of an unpickled module tree, named as `state_dict` names them."""
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, _ScriptModule):
        for name, value in obj.attributes.items():
            if isinstance(value, torch.Tensor):
                out[prefix + name] = value
            elif isinstance(value, _ScriptModule):
                out.update(_module_tensors(value, f"{prefix}{name}."))
    return out


def read_torchscript_archive(path: Path, zf: zipfile.ZipFile) -> dict[str, torch.Tensor]:
    """The tensors of a TorchScript archive, read from its data records; no TorchScript runs
    (unless `$VLPROMPT_TRUST_TORCHSCRIPT` is 1: then `torch.jit.load`, for archives the reader refuses)."""
    if os.environ.get(TRUST_TORCHSCRIPT) == "1":
        try:
            tensors = dict(torch.jit.load(str(path), map_location="cpu").state_dict())
        except Exception as exc:  # noqa: BLE001
            raise BackboneError(f"{path} is not a loadable TorchScript archive: {exc}") from None
        return _fp32(tensors)
    pickles = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise BackboneError(f"{path} is not a TorchScript archive with one data.pkl")
    folder = pickles[0][: -len("data.pkl")]
    try:
        root = _ScriptArchiveUnpickler(zf.read(pickles[0]), lambda key: zf.read(f"{folder}data/{key}"),
                                       path).load()
    except BackboneError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged archive fails in many ways
        raise BackboneError(f"{path} is not a readable TorchScript archive: {exc}") from None
    tensors = _module_tensors(root)
    if not tensors:
        raise BackboneError(f"{path} holds no tensors")
    return _fp32(tensors)


def _fp32(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI's archives hold fp16 weights; the backbones compute in fp32."""
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file (safetensors, TorchScript or a weights-only torch file)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise BackboneError(f"checkpoint file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001
            raise BackboneError(f"{path} is not a readable safetensors file: {exc}") from None
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            if any(n.endswith("constants.pkl") or "/code/" in n for n in zf.namelist()):
                return read_torchscript_archive(path, zf)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeFileError(
            f"refusing to load {path}: it is a pickle that would run arbitrary code "
            f"({str(exc).splitlines()[0][:160]}). Save it as safetensors or a plain state dict.") from None
    except Exception as exc:  # noqa: BLE001
        raise BackboneError(f"{path} is not a readable checkpoint: {exc}") from None
    return _unwrap(obj, path)
