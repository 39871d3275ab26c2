"""--explore: a grid of variants built through the normal plan, measured together, the frontier in the reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import edgeopt
from edgeopt.artifacts.base import ArtifactKind
from edgeopt.cli import main
from edgeopt.config import CompileConfig
from edgeopt.errors import ConfigError
from edgeopt.explore import ExploreGrid, explore_variants, resolve_grid
from edgeopt.models.digits import digits_data, train_digits_cnn
from edgeopt.targets import VariantSpec

BASE = [
    VariantSpec(name="fp32", precision="fp32", passes=["simplify"]),
    VariantSpec(name="int8", precision="int8", passes=["simplify", "quantize_static"]),
]


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A digits CNN trained for seconds, its test split (a subset) and training split as .npz files."""
    folder = tmp_path_factory.mktemp("digits")
    model, x_test, y_test = train_digits_cnn(seed=0, epochs=3)
    arrays = digits_data()
    np.savez(folder / "test.npz", x=x_test[:200], y=y_test[:200])
    np.savez(folder / "train.npz", x=arrays["x_train"], y=arrays["y_train"])
    return {"model": model, "test": str(folder / "test.npz"), "train": str(folder / "train.npz")}


def test_grid_expands_into_variants() -> None:
    grid = ExploreGrid(prune=[1.0, 0.5, 0.25], recovery=["none", "distill"], train_options={"epochs": 1})
    specs = explore_variants(BASE, grid, ArtifactKind.TORCH, has_train=True)
    names = [s.name for s in specs]
    assert names[:2] == ["fp32", "int8"] and len(specs) == 2 + 2 * 2 * 2
    cell = next(s for s in specs if s.name == "macs25-distill-int8")
    assert cell.precision == "int8"
    assert cell.passes == [{"prune": {"macs": 0.25}}, {"distill": {"epochs": 1}}, "simplify", "quantize_static"]
    only_fp32 = explore_variants(BASE, ExploreGrid(prune=[0.5], precisions=["fp32"]), ArtifactKind.TORCH, False)
    assert [s.name for s in only_fp32] == ["macs50-fp32"]


def test_grid_degrades_without_torch_source_or_training_data() -> None:
    grid = ExploreGrid()
    onnx = resolve_grid(grid, ArtifactKind.ONNX, has_train=True)
    assert onnx["prune_macs"] == [1.0] and "need a torch source" in onnx["notes"][0]
    no_train = resolve_grid(grid, ArtifactKind.TORCH, has_train=False)
    assert no_train["recovery"] == ["none"] and "no training data" in no_train["notes"][0]
    assert resolve_grid(grid, ArtifactKind.TORCH, has_train=True)["recovery"] == ["none", "distill"]


def test_config_accepts_a_flag_or_a_grid() -> None:
    assert CompileConfig(model="m.onnx", explore=True).explore == ExploreGrid()
    assert CompileConfig(model="m.onnx", explore=False).explore is None
    with pytest.raises(ConfigError, match="prune budgets must be fractions"):
        CompileConfig.build({"model": "m.onnx", "explore": {"prune": [0.5, 2.0]}})
    with pytest.raises(ConfigError, match="explore.recovry"):
        CompileConfig.build({"model": "m.onnx", "explore": {"recovry": ["distill"]}})


def test_explore_end_to_end(digits_files: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    edgeopt.compile(
        digits_files["model"],
        example_inputs=torch.randn(1, 1, 8, 8),
        data=digits_files["test"],
        train=digits_files["train"],
        out=str(out),
        cache_dir=str(tmp_path / "cache"),
        explore={"prune": [1.0, 0.5], "train_options": {"epochs": 2, "lr": 0.01}},
        latency={"iters": 10, "warmup": 2},
    )
    report = json.loads((out / "report.json").read_text())
    names = [v["name"] for v in report["variants"]]
    assert names == ["reference", "ort-cpu/fp32", "ort-cpu/macs50-fp32", "ort-cpu/macs50-distill-fp32"]
    passes = {v["name"]: [p["pass"] for p in v["passes"]] for v in report["variants"][1:]}
    assert passes["ort-cpu/macs50-distill-fp32"][:3] == ["prune", "distill", "export_onnx"]
    assert report["explore"]["variants"] == {"ort-cpu": ["fp32", "macs50-fp32", "macs50-distill-fp32"]}
    front = {p["name"]: p for p in report["frontier"]}
    assert set(front) == set(names) and front["reference"]["reference"]
    recommended = report["recommended"]
    assert recommended is not None and front[recommended]["pareto"] and front[recommended]["recommended"]
    distilled = next(v for v in report["variants"] if v["name"] == "ort-cpu/macs50-distill-fp32")
    undistilled = next(v for v in report["variants"] if v["name"] == "ort-cpu/macs50-fp32")
    assert distilled["accuracy"]["top1"] > undistilled["accuracy"]["top1"]
    html = (out / "report.html").read_text()
    assert 'class="frontier-chart"' in html and 'class="variants"' in html and "Rule:" in html
    again = edgeopt.compile(
        digits_files["model"], example_inputs=torch.randn(1, 1, 8, 8), data=digits_files["test"],
        train=digits_files["train"], out=str(tmp_path / "again"), cache_dir=str(tmp_path / "cache"),
        explore={"prune": [1.0, 0.5], "train_options": {"epochs": 2, "lr": 0.01}}, latency={"iters": 5, "warmup": 1},
    )  # fmt: skip
    assert all(p["cached"] for v in again.report["variants"][1:] for p in v["passes"])


def test_cli_explore_dry_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["compile", "edgeopt.models.resnet:cifar_resnet20_factory", "--explore", "--dry-run",
            "--distill-hard-weight", "0", "--out", str(tmp_path / "o")]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "ort-cpu/macs50-fp32: prune -> export_onnx" in text
    assert "distill" not in text  # no --train: the default grid leaves distillation out (and says so in the report)
    assert (
        main(["compile", "edgeopt.models.resnet:cifar_resnet20_factory", "--distill-hard-weight", "2", "--dry-run"])
        == 2
    )
    assert "distill_hard_weight" in capsys.readouterr().err
