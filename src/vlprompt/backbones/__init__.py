"""Backbones: the only code that knows a model library's internals."""

from ..utils.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "BackboneError": ".base", "NeedsViTError": ".base", "TowerInfo": ".base", "VLBackbone": ".base",
    "available_backbones": ".registry", "load_backbone": ".registry"}, globals())

__all__ = ["BackboneError", "NeedsViTError", "TowerInfo", "VLBackbone", "available_backbones",
           "load_backbone"]
