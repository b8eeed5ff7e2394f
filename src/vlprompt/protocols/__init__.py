"""Evaluation protocols: grids of runs (few-shot, base-to-new, domain generalization,
cross-dataset), their execution into the results store, and their summaries."""

from __future__ import annotations

from ..utils.registry import Registry
from .base import GridOptions, Protocol, RunSpec, Target
from .base2new import BaseToNew
from .fewshot import FewShot
from .transfer import CrossDataset, DomainGeneralization

PROTOCOLS: Registry[type[Protocol]] = Registry("protocol")
#: Other spellings accepted on the command line.
ALIASES = {"fewshot": ("few-shot",), "base2new": ("base-to-new",), "domain-generalization": ("dg",),
           "cross-dataset": ("cross",)}
for _protocol in (FewShot, BaseToNew, DomainGeneralization, CrossDataset):
    PROTOCOLS.register(_protocol.name, _protocol, ALIASES[_protocol.name])

__all__ = ["PROTOCOLS", "GridOptions", "Protocol", "RunSpec", "Target", "get_protocol", "protocol_names"]


def protocol_names() -> list[str]:
    return PROTOCOLS.names()


def get_protocol(name: str, preset: str = "paper") -> Protocol:
    proto = PROTOCOLS.get(name)()
    if hasattr(proto, "preset"):
        proto.preset = preset
    return proto
