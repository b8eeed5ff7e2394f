"""A finished run on disk: learned weights, the config to rebuild the method, the run record.

`<dir>/weights.safetensors` holds exactly `method.learned` (a few kilobytes for a prompt);
`<dir>/config.json` beside it names the method, its config, the class names, templates and
backbone, which is all `load_method` needs; `<dir>/run.json` is the run record (full
config, seed, library versions, backbone checksum, metrics, timings).

Saved prompts are untrusted input (they are shared): the weights must be a safetensors
file, recognised from its first bytes; a pickle or `torch.save` file is refused before
anything parses it, and config.json is checked field by field.
"""

from __future__ import annotations

import json
import logging
import platform
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..backbones.base import VLBackbone
from ..backbones.checkpoints import UnsafeFileError
from ..config import from_dict, to_dict
from ..errors import ConfigError, VLPromptWarning
from ..methods.base import Method
from ..methods.registry import create_method, get_method_class
from ..utils.filetypes import is_pickle_based, sniff
from ..utils.io import atomic_write_bytes, atomic_write_json
from ..utils.runtime import threads_record
from ..utils.tensorfile import save_tensors as save_safetensors
from ..version import __version__

log = logging.getLogger(__name__)
WEIGHTS, CONFIG, RECORD = "weights.safetensors", "config.json", "run.json"
FORMAT = "vlprompt.method/1"


def environment() -> dict:
    """Library versions and machine, for run records."""
    import open_clip

    env = {"vlprompt": __version__, "torch": torch.__version__, "open_clip": open_clip.__version__,
           "python": platform.python_version(), "platform": platform.platform(),
           "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, **threads_record()}
    try:
        import torchvision

        env["torchvision"] = torchvision.__version__
    except ImportError:  # pragma: no cover
        pass
    return env


def method_config(method: Method, extra: dict | None = None) -> dict:
    return {"format": FORMAT, "method": method.name, "config": to_dict(method.config),
            "classnames": method.classnames, "dataset_templates": method.dataset_templates,
            "backbone": method.backbone.spec, "backbone_checksum": method.backbone.checksum(),
            "trains": method.spec.trains, **(extra or {})}


def save_method(method: Method, directory: str | Path, extra: dict | None = None) -> Path:
    """Write weights.safetensors + config.json into `directory`; returns the weights path."""
    directory = Path(directory)
    state = method.learned_state()
    blob = save_safetensors(state, metadata={"format": FORMAT, "method": method.name})
    atomic_write_bytes(directory / WEIGHTS, blob)
    atomic_write_json(directory / CONFIG, method_config(method, extra))
    return directory / WEIGHTS


def read_method_config(path: str | Path) -> tuple[dict, Path]:
    """(config.json contents, weights path) from a run folder or a weights file."""
    path = Path(path)
    weights = path / WEIGHTS if path.is_dir() else path
    config = weights.with_name(CONFIG)
    if not weights.is_file():
        raise ConfigError(f"no learned weights at {weights}")
    kind = sniff(weights)
    if is_pickle_based(kind):
        raise UnsafeFileError(
            f"refusing to load {weights}: it is a {kind} file, and unpickling can run arbitrary code; "
            f"vlprompt reads saved methods only from safetensors weights with {CONFIG} beside them "
            "(as `vlprompt train` writes them)")
    if kind != "safetensors":
        raise ConfigError(f"{weights} is not a safetensors file; pass a run folder or its {WEIGHTS}")
    if not config.is_file():
        raise ConfigError(f"{weights} has no {CONFIG} beside it")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{config} cannot be read as JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{config} is not a vlprompt method config")
    _check_fields(data, config)
    return data, weights


def _check_fields(data: dict, where: Path) -> None:
    """The types `load_method` relies on; a hand-edited or foreign file fails here, by name."""
    checks = {"method": lambda v: isinstance(v, str), "config": lambda v: isinstance(v, dict),
              "backbone": lambda v: isinstance(v, str),
              "classnames": lambda v: isinstance(v, list) and bool(v) and all(isinstance(c, str) for c in v),
              "dataset_templates": lambda v: v is None or (isinstance(v, list)
                                                           and all(isinstance(t, str) for t in v))}
    for key, ok in checks.items():
        if not ok(data.get(key)):
            raise ConfigError(f"{where}: field {key!r} is missing or has the wrong type ({data.get(key)!r:.60})")


def load_method(path: str | Path, backbone: VLBackbone | None = None, device: str = "auto") -> Method:
    """Rebuild a saved method (its backbone from the recorded spec unless one is given)."""
    from ..backbones import load_backbone

    data, weights = read_method_config(path)
    other = backbone is not None and backbone.checksum() != data.get("backbone_checksum")
    if backbone is None:
        backbone = load_backbone(data["backbone"], device=device)
    cls = get_method_class(data["method"])
    cfg = from_dict(cls.Config, data["config"], where="method")
    method = create_method(data["method"], backbone, data["classnames"], config=cfg,
                           dataset_templates=data.get("dataset_templates"))
    try:
        state = {k: v.to(backbone.device) for k, v in load_file(str(weights)).items()}
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"{weights} is damaged ({exc}); train again or restore the file") from None
    trained_on = f"trained with backbone {data['backbone']} (checksum {str(data.get('backbone_checksum'))[:12]})"
    try:
        method.load_learned(state)
    except ConfigError as exc:
        where = f"; it was {trained_on}, this is {backbone.spec}" if other else ""
        raise ConfigError(f"{weights} does not fit {data['method']} on this backbone: {exc}{where}") from None
    if other:
        warnings.warn(f"{weights} was {trained_on}; using {backbone.spec} (checksum {backbone.checksum()[:12]})",
                      VLPromptWarning, stacklevel=2)
    return method
