"""safetensors bytes that are the same for the same tensors and metadata.

`safetensors.torch.save` writes its JSON header from a hash map, so the order of the
metadata keys (and with it the file's bytes) changes from process to process. Here the
header is rewritten with sorted keys and no spaces, padded to 8 bytes as the format asks;
the tensor bytes and their offsets are unchanged, so any safetensors reader reads it.
Identical runs thus give byte-identical files, and `cmp` and content hashes work.
"""

from __future__ import annotations

import json

import torch
from safetensors.torch import save as _save


def save_tensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """The safetensors bytes of `tensors` with a canonical header."""
    blob = _save(tensors, metadata=metadata)
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + blob[8 + size:]
