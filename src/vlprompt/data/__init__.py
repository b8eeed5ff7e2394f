"""Datasets: the benchmark layouts of the reference repositories, custom data, few-shot subsets.

    >>> from vlprompt.data import load_dataset, sample_fewshot
    >>> data = load_dataset("eurosat", root="~/data")          # doctest: +SKIP
    >>> few = sample_fewshot(data, shots=16, seed=1)           # doctest: +SKIP
"""

from ..utils.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "split_base_new": ".classsplit", "sample_fewshot": ".fewshot", "ImageDataset": ".images",
    "ImageLoader": ".images", "open_image": ".images", "DatasetError": ".registry",
    "dataset_status": ".registry", "list_datasets": ".registry", "load_dataset": ".registry",
    "DatasetSplits": ".types", "Item": ".types"}, globals())

__all__ = [
    "DatasetError",
    "DatasetSplits",
    "ImageDataset",
    "ImageLoader",
    "Item",
    "dataset_status",
    "list_datasets",
    "load_dataset",
    "open_image",
    "sample_fewshot",
    "split_base_new",
]
