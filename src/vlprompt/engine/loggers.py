"""Training curves where users look: TensorBoard and Weights & Biases (`--log`).

The run record (`run.json`'s `history`) is the source of truth; a logger only mirrors each
epoch's history row as it is appended (loss and its parts, learning rate, training and
validation accuracy, seconds), so choosing one never changes a number. Names of scalars:
`loss/<part>` (`loss/total` for the loss), `train/acc`, `train/steps`, `val/<metric>`, `lr`
and `time/epoch_seconds`, each at step epoch + 1.

- `tensorboard`: TensorBoard's own event writer (`torch.utils.tensorboard.SummaryWriter`,
  which needs the `tensorboard` package: `pip install 'vlprompt[tb]'`) into `<run>/tb/`.
- `wandb`: `wandb.init(dir=<run>)` in offline mode unless the user configured W&B
  (`WANDB_MODE` set); offline runs land in `<run>/wandb/` for `wandb sync`. The project
  is `$WANDB_PROJECT`, else `vlprompt`; the run's config is the run record's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from ..utils.runtime import check_loggers

#: History keys that are not losses, and their scalar names.
_NAMED = {"loss": "loss/total", "acc": "train/acc", "steps": "train/steps", "lr": "lr",
          "seconds": "time/epoch_seconds"}


def scalars(row: dict) -> dict[str, float]:
    """One history row as named scalars (the epoch is the step, not a scalar)."""
    out = {}
    for key, value in row.items():
        if key == "epoch" or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if key in _NAMED:
            out[_NAMED[key]] = float(value)
        elif key.startswith("val_"):
            out[f"val/{key[4:]}"] = float(value)
        else:
            out[f"loss/{key}"] = float(value)  # the method's loss parts (ce, kl, reg, ...)
    return out


class EpochLogger:
    """Receives each epoch's history row; `close` flushes."""

    def log(self, row: dict) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class TensorBoardLogger(EpochLogger):
    def __init__(self, out_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--log tensorboard needs the tensorboard package: "
                              "pip install 'vlprompt[tb]'") from None
        self.folder = Path(out_dir) / "tb"
        self.writer = SummaryWriter(log_dir=str(self.folder))

    def log(self, row: dict) -> None:
        step = int(row.get("epoch", 0)) + 1
        for name, value in scalars(row).items():
            self.writer.add_scalar(name, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbLogger(EpochLogger):
    def __init__(self, out_dir: Path, config: dict):
        try:
            import wandb
        except ImportError:
            raise ConfigError("--log wandb needs the wandb package: pip install 'vlprompt[wandb]'") from None
        mode = os.environ.get("WANDB_MODE") or "offline"  # the user's setting wins; else nothing leaves
        self.run = wandb.init(dir=str(out_dir), project=os.environ.get("WANDB_PROJECT", "vlprompt"),
                              name=Path(out_dir).name, config=config, mode=mode)

    def log(self, row: dict) -> None:
        self.run.log(scalars(row), step=int(row.get("epoch", 0)) + 1)

    def close(self) -> None:
        self.run.finish()


def open_loggers(names: Sequence[str], out_dir: str | Path | None, config: dict | None = None) -> list[EpochLogger]:
    """The loggers `names` asks for, writing beside the run in `out_dir`."""
    names = check_loggers(names)
    if not names:
        return []
    if out_dir is None:
        raise ConfigError(f"--log {','.join(names)} needs a run folder to write into")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [TensorBoardLogger(out) if n == "tensorboard" else WandbLogger(out, config or {}) for n in names]
