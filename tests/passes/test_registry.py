"""The pass registry: lookup with suggestions, converters, and the contract every registered pass declares."""

from __future__ import annotations

from typing import ClassVar

import pytest

from edgeopt.artifacts.base import ArtifactKind
from edgeopt.errors import ConfigError
from edgeopt.passes.base import Pass, PassConfig
from edgeopt.passes.registry import REGISTRY, PassRegistry
from edgeopt.passes.torch.export_onnx import ExportOnnx

CORE_PASSES = {"dynamic_batch", "export_onnx", "fix_batch", "ort_optimize", "simplify"}


class _Noop(Pass):
    name = "noop"
    input_kind = ArtifactKind.ONNX
    output_kind = ArtifactKind.ONNX

    def run(self, model, ctx, out_path):  # pragma: no cover - never run
        raise NotImplementedError


class _OtherNoop(_Noop):
    tools: ClassVar[tuple[str, ...]] = ()


def test_core_passes_are_registered() -> None:
    names = REGISTRY.names()
    assert CORE_PASSES <= set(names)
    assert names == sorted(names)
    for name in CORE_PASSES:
        assert REGISTRY.get(name).name == name


@pytest.mark.parametrize(("typo", "suggestion"), [("simplfy", "simplify"), ("export-onnx", "export_onnx"),
                                                  ("ort_optimise", "ort_optimize")])
def test_unknown_pass_suggests_the_closest(typo: str, suggestion: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown pass '{typo}'") as info:
        REGISTRY.get(typo)
    assert f"did you mean '{suggestion}'?" in str(info.value)


def test_unknown_pass_without_a_close_name_lists_them() -> None:
    with pytest.raises(ConfigError, match="known passes: .*simplify"):
        REGISTRY.get("zzzzzzzz")


def test_converters() -> None:
    assert REGISTRY.converter(ArtifactKind.TORCH, ArtifactKind.ONNX) is ExportOnnx
    assert REGISTRY.converter(ArtifactKind.ONNX, ArtifactKind.TORCH) is None


def test_a_name_cannot_be_registered_twice() -> None:
    registry = PassRegistry()  # a private registry: the global one stays untouched
    registry._loaded = True
    registry.register(_Noop)
    registry.register(_Noop)  # the same class again is fine
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(_OtherNoop)
    assert registry.names() == ["noop"]


@pytest.mark.parametrize("name", sorted(CORE_PASSES))
def test_pass_contract(name: str) -> None:
    cls = REGISTRY.get(name)
    assert isinstance(cls.input_kind, ArtifactKind) and isinstance(cls.output_kind, ArtifactKind)
    assert issubclass(cls.Config, PassConfig) and cls.Config.model_config.get("extra") == "forbid"
    cls()  # every config has defaults
    with pytest.raises(ConfigError, match=f"invalid config for pass '{name}': not_a_field") as info:
        cls({"not_a_field": 1})
    assert "valid fields are" in str(info.value)
    assert isinstance(cls.version, str) and cls.version
    tol_abs, tol_cos = cls.check_tolerance
    assert 0 < tol_abs <= 1e-3 and 0.99 < tol_cos <= 1
