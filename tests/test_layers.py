"""Imports run one way (docs/architecture.md): an AST walk of the package finds every import
of one vlprompt module by another, lazy ones inside functions included, and fails on any that
goes against the layer order. Also: `import vlprompt` and the CLI's help load no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import vlprompt

PACKAGE = Path(vlprompt.__file__).parent

#: Layer of each top-level module or sub-package; a module may import only from its own layer
#: or lower ones. Equal numbers are peers that must not import each other (checked below).
LAYERS = {
    "version": 0, "errors": 0, "assets": 0,
    "utils": 1, "config": 1, "metrics": 1,
    "backbones": 2, "data": 2, "results": 2,
    "methods": 3,
    "engine": 4,
    "pretrain": 5, "protocols": 5,
    "studies": 6,
    "api": 7,
    "cli": 8, "__main__": 8,
    "__init__": 9,
}
#: Peers of one layer that are independent of each other.
PEERS_APART = [("backbones", "data"), ("backbones", "results"), ("data", "results"), ("pretrain", "protocols")]


def _unit(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0]


def _imports(path: Path) -> set[str]:
    """Top-level vlprompt units imported by one file (relative and absolute imports)."""
    return _imports_of(path.read_text(), list(path.relative_to(PACKAGE).parent.parts))


def _imports_of(text: str, package: list[str]) -> set[str]:
    tree = ast.parse(text)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                parts = base + [p for p in (node.module or "").split(".") if p]
                if parts:
                    out.add(parts[0])
                else:  # `from .. import x`: x is a unit of the package root
                    out.update(alias.name for alias in node.names)
            elif node.module and node.module.split(".")[0] == "vlprompt":
                parts = node.module.split(".")[1:]
                out.add(parts[0] if parts else "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "vlprompt":
                    out.add(parts[1] if len(parts) > 1 else "__init__")
    return out


def test_every_unit_has_a_layer():
    units = {_unit(p) for p in PACKAGE.rglob("*.py")}
    assert units - set(LAYERS) == set(), "add the new module to LAYERS and docs/architecture.md"


def test_imports_run_one_way():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = _unit(path)
        for target in _imports(path) - {unit}:
            if target not in LAYERS:
                wrong.append(f"{path.relative_to(PACKAGE)} imports unknown unit {target}")
            elif LAYERS[target] > LAYERS[unit]:
                wrong.append(f"{path.relative_to(PACKAGE)} ({unit}, layer {LAYERS[unit]}) imports "
                             f"{target} (layer {LAYERS[target]})")
            elif {unit, target} in [set(p) for p in PEERS_APART]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports its peer {target}")
    assert not wrong, "\n".join(wrong)


def test_the_walk_sees_lazy_relative_and_absolute_imports():
    """The checker must not be blind: imports inside functions, `from .. import x` and
    absolute imports all count."""
    text = "def f():\n    from ..engine import runs\nimport vlprompt.cli.main\nfrom .. import api\n"
    assert _imports_of(text, ["methods"]) == {"engine", "cli", "api"}
    assert _imports_of("from .components import prompts\n", ["methods"]) == {"methods"}


def test_import_and_every_help_load_no_torch():
    """`import vlprompt`, `vlprompt --help` and every `vlprompt <command> --help` import
    neither torch nor open_clip, scipy or matplotlib; the API still loads on first use."""
    code = ("import sys, vlprompt\n"
            "from vlprompt.cli.main import build_parser\n"
            "parser = build_parser()\n"
            "parser.format_help()\n"
            "subs = [a for a in parser._actions if hasattr(a, 'choices') and isinstance(a.choices, dict)]\n"
            "helps = [p.format_help() for a in subs for p in a.choices.values()]\n"
            "heavy = sorted(m for m in ('torch', 'open_clip', 'scipy', 'matplotlib') if m in sys.modules)\n"
            "print(len(helps), ','.join(heavy) or '-')\n"
            "vlprompt.load_backbone\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, second = out.stdout.splitlines()
    n_helps, heavy = first.split()
    assert int(n_helps) >= 15 and heavy == "-"
    assert second == "True"


#: "About eight": the most parameters a public function or method of the package may take
#: (docs/architecture.md). What belongs together travels as one value (a config, a Grid, a
#: Runtime) instead of one parameter per flag.
MAX_PARAMETERS = 10


def test_public_functions_take_few_parameters():
    wide = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.name.startswith("_"):
                continue
            args = node.args
            names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
            count = len(names) - (names[:1] in (["self"], ["cls"]))
            if count > MAX_PARAMETERS:
                wide.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({count})")
    assert not wide, "public functions over the parameter limit: " + "; ".join(wide)
