"""`vlprompt list backbones|templates|datasets|methods`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.templates import TEMPLATE_SETS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list backbones, templates, datasets, methods",
                       description="List what vlprompt knows.")
    p.add_argument("what", choices=["backbones", "templates", "datasets", "methods"])
    p.add_argument("--root", type=Path, help="with datasets: report which are present under this folder")
    p.add_argument("--all", action="store_true", help="with backbones: every open_clip architecture and tag")
    p.add_argument("--options", dest="show_options", action="store_true",
                   help="with methods: every option with its default and help")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..backbones.registry import available_backbones

    if args.what == "backbones":
        for name in available_backbones():
            print(name)
        if args.all:
            import open_clip

            for arch, tag in open_clip.list_pretrained():
                print(f"openclip:{arch}@{tag}")
        else:
            print("(any open_clip architecture works: openclip:<arch>[@<tag|file>]; --all lists tags)")
    elif args.what == "methods":
        _list_methods(args.show_options)
    elif args.what == "templates":
        for name, templates in TEMPLATE_SETS.items():
            print(f"{name} ({len(templates)} templates): {templates[0]} ...")
        print("dataset: the dataset's own hand-crafted template(s); combine sets with '+'")
    else:
        from ..data import registry

        for name in registry.list_datasets():
            if args.root is not None and hasattr(registry, "dataset_status") and ":" not in name:
                print(f"{name}\t{registry.dataset_status(name, args.root)}")
            else:
                print(name)
    return 0


def _list_methods(verbose: bool) -> None:
    from ..config import describe
    from ..engine.options import TrainConfig
    from ..methods.presets import rules_for
    from ..methods.registry import get_method_class, list_methods

    for name in list_methods():
        cls = get_method_class(name)
        spec = cls.SPEC
        print(f"{name}\ttrains: {spec.trains}; fit: {spec.fit}; "
              f"new classes: {'yes' if spec.can_change_classes else 'no'}")
        if verbose:
            for line in describe(cls.Config):
                print(f"    method.{line}")
            rules = rules_for(cls)
            if rules:
                print("    preset (later lines win; --set overrides):")
            for rule in rules:
                values = [f"method.{k}={v!r}" for k, v in rule.method.items()]
                values += [f"train.{k}={v!r}" for k, v in rule.train.items()]
                print(f"      [{rule.condition()}] {', '.join(values)}  [from: {rule.source}]")
    if verbose:
        print("training options (every method; a method's preset changes some):")
        for line in describe(TrainConfig):
            print(f"    train.{line}")
