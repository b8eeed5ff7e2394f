"""Which validation data a stored run used (`data.validation`), read from its record."""

from __future__ import annotations

#: How a label marks a run's validation setting (`data.validation`); the default has no mark.
VALIDATION_TAGS = {"fewshot": "", "none": "no val", "full": "full val"}
VALIDATION_MEANING = {
    "fewshot": "selection and searches on the few-shot val split: K images per class, at most 4",
    "none": "no validation data: each method's fixed defaults",
    "full": "searches on the dataset's whole val split",
}


def validation_of(rec: dict) -> str:
    """A record's `data.validation` setting; fewshot for records stored before the option
    existed and for methods that learn nothing (0 shots), which use no validation data."""
    if int(rec.get("shots") or 0) == 0:
        return "fewshot"
    setting = ((rec.get("metrics") or {}).get("validation") or {}).get("setting")
    return setting if setting in VALIDATION_TAGS else "fewshot"


def validation_tag(rec: dict) -> str:
    """The mark a report puts after the method's name: "" for the default, "no val", "full val"."""
    return VALIDATION_TAGS[validation_of(rec)]
