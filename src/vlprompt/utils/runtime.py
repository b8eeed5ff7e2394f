"""The compute settings every command shares: one `Runtime` (device, DataLoader workers,
progress bars, the feature-cache folder, the data root) made once by the CLI or the caller and
passed as one object, the device check, and the number of CPU threads.

Threads (docs/performance.md): torch's default is one thread per core of the machine. On a
machine shared with other jobs, those threads wait on each other, and a model as small as
the bundled tiny CLIP gains nothing from more than one. `threads="auto"` (the CLI default)
therefore uses the cores this process may run on (`os.sched_getaffinity`) until a backbone
is loaded, and one thread once the backbone turns out to be small (at most
`SMALL_MODEL_PARAMS` parameters). An explicit number is used as given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:  # torch loads when a function needs it: the CLI's help imports this module
    import torch


@dataclass(frozen=True)
class Runtime:
    """Where and how work runs, never what it computes: two runs that differ only in their
    Runtime give the same numbers (on CPU, bit for bit). Threads are process-wide and set by
    `set_threads` (the CLI's `--threads`)."""

    device: str = "auto"  # auto: CUDA, then Apple's MPS, then the CPU
    workers: int | None = None  # DataLoader worker processes; None: `default_workers(device)`
    progress: bool = True  # progress bars
    cache_dir: str | Path | None = None  # frozen image features are cached here (None: the default folder)
    root: str | Path | None = None  # the folder holding the benchmark datasets ($DATA)
    log: tuple[str, ...] = ()  # training-curve mirrors of the run record: "tensorboard", "wandb"

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", str(check_device(self.device)))  # "auto" -> what this machine has
        if self.workers is None:
            object.__setattr__(self, "workers", default_workers(self.device))
        if not isinstance(self.workers, int) or self.workers < 0:
            raise ConfigError(f"workers must be a non-negative integer, got {self.workers!r}")
        object.__setattr__(self, "log", check_loggers(self.log))

    def but(self, **changes) -> Runtime:
        """A copy with some settings changed (`runtime.but(progress=False)`)."""
        return replace(self, **changes)


#: The training-curve loggers `Runtime.log` may name (`engine/loggers.py` writes them).
LOGGERS = ("tensorboard", "wandb")


def check_loggers(names) -> tuple[str, ...]:
    """`names` (a sequence, or one comma-separated text) as a tuple of known loggers, each
    once; an unknown one is a ConfigError naming it. Loggers mirror the run record, so
    they belong here: they change where numbers go, never the numbers."""
    if isinstance(names, str):
        names = names.split(",")
    try:
        given = [str(n).strip().lower() for n in names]
    except TypeError:
        raise ConfigError(f"log must be a list of logger names ({', '.join(LOGGERS)}), got {names!r}") from None
    bad = [n for n in given if n and n not in LOGGERS]
    if bad:
        raise ConfigError(f"unknown logger {bad[0]!r} in --log; use {' or '.join(LOGGERS)}")
    return tuple(dict.fromkeys(n for n in given if n))


#: DataLoader workers on a GPU machine when the user names none: image decoding in the main
#: process would leave the GPU waiting. Not yet measured on a GPU (docs/performance.md).
GPU_WORKERS = 4


def default_workers(device: str) -> int:
    """0 on CPUs (the decoding processes would take cores from the encoding), else up to
    GPU_WORKERS, leaving one core to the main process."""
    if not device.startswith("cuda"):
        return 0
    return min(GPU_WORKERS, max(0, available_cores() - 1))


def runtime_or_default(runtime: Runtime | None) -> Runtime:
    return Runtime() if runtime is None else runtime

#: Backbones with at most this many parameters run on one thread under "auto" (the tiny CLIP
#: has 8.0M; ViT-B/32 has 151M). See docs/performance.md for the measurements.
SMALL_MODEL_PARAMS = 20_000_000

_state: dict = {"auto": False, "choice": None}


def available_cores() -> int:
    """The cores this process may run on (its affinity mask), else the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def set_threads(threads: int | str | None) -> int:
    """Apply a `--threads` value: a positive number, "auto", or None/0 for torch's default."""
    import torch

    if threads in (None, 0, "0", "default"):
        _state.update(auto=False, choice="torch default")
        return torch.get_num_threads()
    if threads == "auto":
        n = available_cores()
        _state.update(auto=True, choice=f"auto: {n} available core(s) until the backbone is known")
    else:
        try:
            n = int(threads)
        except (TypeError, ValueError):
            raise ConfigError(f"--threads must be a positive number or 'auto', got {threads!r}") from None
        if n < 1:
            raise ConfigError(f"--threads must be a positive number or 'auto', got {threads!r}")
        _state.update(auto=False, choice=f"--threads {n}")
    torch.set_num_threads(n)
    return n


def fit_threads_to_model(n_params: int) -> None:
    """Under "auto", one thread for a small backbone (called when a backbone is loaded)."""
    import torch

    if not _state["auto"]:
        return
    if n_params <= SMALL_MODEL_PARAMS:
        torch.set_num_threads(1)
        _state["choice"] = f"auto: 1 thread (backbone of {n_params / 1e6:.1f}M parameters)"
    else:
        n = available_cores()
        torch.set_num_threads(n)
        _state["choice"] = f"auto: {n} available core(s) (backbone of {n_params / 1e6:.0f}M parameters)"


def threads_record() -> dict:
    """For run records: the threads torch uses and how that number was chosen."""
    import torch

    return {"threads": torch.get_num_threads(), "threads_choice": _state["choice"] or "torch default"}


def auto_device() -> str:
    """What `auto` means here: the first GPU (CUDA), else Apple's MPS, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def check_device(device: str | torch.device) -> str | torch.device:
    """`device` when this machine has it (`auto`: the best one it has), else a ConfigError
    that says what to use."""
    import torch

    if isinstance(device, str) and device.strip().lower() == "auto":
        return auto_device()
    if isinstance(device, torch.device):
        check_device(str(device))
        return device
    if not isinstance(device, str) or not device.strip():
        raise ConfigError("--device is empty; use auto, cpu, cuda or cuda:N")
    try:
        dev = torch.device(device.strip())
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return device
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA GPU is usable on this machine "
                              f"(torch {torch.__version__}); use --device cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"--device {device}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}")
        return device
    if dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"--device {device}: Apple's MPS is not available here; use --device cpu")
        return device
    raise ConfigError(f"device {device!r} is not supported; use cpu, cuda or cuda:N")
