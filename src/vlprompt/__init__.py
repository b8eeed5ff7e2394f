"""vlprompt: few-shot adaptation of CLIP-like vision-language models.

    >>> import vlprompt
    >>> backbone = vlprompt.load_backbone("tiny")
    >>> data = vlprompt.load_dataset("synthetic:shapes")
    >>> clf = vlprompt.zeroshot_classifier(backbone, data.classnames, data.templates)
"""

from importlib import import_module
from typing import Any

from .version import __version__

#: Public names and the modules they live in; imported on first use, so that `import
#: vlprompt` (and the CLI's help) does not load torch, open_clip or scipy.
_LAZY = {name: "vlprompt.api" for name in (
    "create_method", "evaluate_run", "export_classifier", "fit", "list_methods", "load_backbone",
    "load_dataset", "load_method", "predict", "sample_fewshot", "train", "zeroshot_classifier",
    "zeroshot_evaluate", "Runtime", "Grid", "run_protocol", "claim_run_dir")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vlprompt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__", "load_backbone", "load_dataset", "sample_fewshot", "zeroshot_classifier",
    "zeroshot_evaluate", "create_method", "list_methods", "train", "fit", "evaluate_run", "load_method",
    "predict", "export_classifier", "Runtime",
]
