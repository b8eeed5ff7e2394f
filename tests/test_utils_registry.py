"""The one registry helper: registration, order, aliases, and a helpful unknown-name error."""

from __future__ import annotations

import pytest

from vlprompt.errors import ConfigError
from vlprompt.methods.registry import get_method_class
from vlprompt.protocols import get_protocol
from vlprompt.utils.registry import Registry


def test_register_list_alias_and_twice():
    reg: Registry[int] = Registry("widget", "(see docs/widgets.md)")
    reg.register("alpha", 1)
    reg.register("beta", 2, aliases=("b",))
    assert reg.names() == ["alpha", "beta"] and len(reg) == 2
    assert reg.get("b") == 2 and reg["alpha"] == 1 and "b" in reg and "gamma" not in reg
    reg.register("alpha", 1)  # the same entry again is harmless
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("alpha", 3)
    copy = reg.copy()
    copy.register("gamma", 3)
    assert "gamma" not in reg


def test_unknown_names_suggest_the_closest():
    reg: Registry[int] = Registry("widget", "(see docs/widgets.md)")
    reg.register("linear-probe", 1)
    with pytest.raises(ConfigError, match=r"unknown widget 'linear-prob' \(did you mean 'linear-probe'\?\); "
                                          r"known: linear-probe \(see docs/widgets.md\)"):
        reg.get("linear-prob")
    with pytest.raises(ConfigError, match=r"unknown widget 'zzz'; known"):
        reg.get("zzz")


def test_methods_and_protocols_use_it():
    with pytest.raises(ConfigError, match=r"did you mean 'cocoop'"):
        get_method_class("cocop")
    with pytest.raises(ConfigError, match=r"unknown protocol 'basetonew'.*did you mean"):
        get_protocol("basetonew")
    assert get_protocol("dg").name == "domain-generalization"
