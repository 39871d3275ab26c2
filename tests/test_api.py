"""edgeopt.compile end to end: report schema and fields, report.md, manifest, determinism, cache, validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import edgeopt
from edgeopt.api import CompileResult
from edgeopt.artifacts.torch_model import module_sha256
from edgeopt.errors import ConfigError, DataError, PipelineError
from edgeopt.fileio import sha256_file

HEADER = "| variant | target | precision | status | size MB | accuracy | latency ms median | speed-up vs baseline |"
VARIANT_FIELDS = {"name", "target", "precision", "status", "artifact", "size_bytes", "accuracy", "fidelity",
                  "latency_ms", "speedup_vs_baseline"}
FAST = {"latency": {"iters": 5, "warmup": 1}}
TORCH_CHAIN = ["export_onnx", "dynamic_batch", "simplify", "ort_optimize"]


def _artifact_hashes(out: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted((out / "artifacts").iterdir())}


def _nothing_written(out: Path) -> bool:
    return not any((out / name).exists() for name in ("report.json", "report.md", "manifest.json", "artifacts"))


@pytest.fixture(scope="module")
def compiled_twice(small_cnn: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The small CNN compiled twice with the same cache (eval data: 16 labelled samples in an npz)."""
    root = tmp_path_factory.mktemp("api")
    rng = np.random.default_rng(0)
    data = root / "eval.npz"
    np.savez(data, x=rng.standard_normal((16, 3, 32, 32)).astype(np.float32), y=rng.integers(0, 10, 16))
    runs = []
    for i in range(2):
        result = edgeopt.compile(small_cnn, example_inputs=torch.randn(1, 3, 32, 32), data=data,
                                 out=root / f"out{i}", cache_dir=str(root / "cache"), **FAST)
        runs.append(result)
    return {"runs": runs, "outs": [root / "out0", root / "out1"], "data": data}


def test_report_schema_and_variant_fields(compiled_twice: dict[str, Any]) -> None:
    result: CompileResult = compiled_twice["runs"][0]
    out = compiled_twice["outs"][0]
    report = json.loads((out / "report.json").read_text())
    assert report == json.loads(json.dumps(result.report))  # the file is the returned report
    assert report["schema"] == "edgeopt.report/1"
    assert [v["name"] for v in report["variants"]] == ["reference", "ort-cpu/fp32"]
    for v in report["variants"]:
        assert VARIANT_FIELDS <= set(v)
        assert v["status"] == "ok" and v["precision"] == "fp32"
        assert set(v["accuracy"]) >= {"top1", "n"} and v["accuracy"]["n"] == 16
        assert set(v["latency_ms"]) >= {"median", "p90", "p99"} and v["latency_ms"]["median"] > 0
        assert isinstance(v["speedup_vs_baseline"], float)
    ref, var = report["variants"]
    assert ref["target"] == "pytorch" and ref["fidelity"] is None
    assert var["target"] == "ort-cpu" and var["artifact"] == "artifacts/ort-cpu-fp32.onnx"
    assert var["size_bytes"] == (out / var["artifact"]).stat().st_size
    assert set(var["fidelity"]) >= {"cosine", "max_abs", "top1_agreement"}
    assert var["fidelity"]["max_abs"] <= 1e-4 and var["fidelity"]["top1_agreement"] == 1.0
    assert var["accuracy"] == ref["accuracy"]
    assert "recommended" in report and report["recommended"] in (None, "ort-cpu/fp32")
    assert report["machine"]["summary"] and report["data"]["n"] == 16


def test_pass_records_and_numerical_checks(compiled_twice: dict[str, Any]) -> None:
    first, second = (r.report["variants"][1]["passes"] for r in compiled_twice["runs"])
    assert [p["pass"] for p in first] == TORCH_CHAIN
    assert all(p["check"] is not None and p["check"]["ok"] and p["check"]["inputs"] == "real" for p in first)
    assert [p["cached"] for p in first] == [False] * 4
    assert [p["cached"] for p in second] == [True] * 4  # the second run is served by the cache


def test_compiling_twice_gives_identical_artifacts(compiled_twice: dict[str, Any]) -> None:
    a, b = (_artifact_hashes(out) for out in compiled_twice["outs"])
    assert a == b and list(a) == ["ort-cpu-fp32.onnx"]
    runs = compiled_twice["runs"]
    assert runs[0].artifacts == {"ort-cpu/fp32": compiled_twice["outs"][0] / "artifacts" / "ort-cpu-fp32.onnx"}


def test_report_md(compiled_twice: dict[str, Any]) -> None:
    md = (compiled_twice["outs"][0] / "report.md").read_text()
    lines = md.splitlines()
    assert HEADER in lines
    table = lines[lines.index(HEADER) + 2 :]
    assert table[0].startswith("| reference | pytorch | fp32 | ok |")
    assert table[1].startswith("| ort-cpu/fp32")


def test_manifest(compiled_twice: dict[str, Any], small_cnn: torch.nn.Module) -> None:
    out = compiled_twice["outs"][0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["config"]["seed"] == 0
    assert manifest["config"]["latency"]["iters"] == 5
    assert {"onnx", "onnxruntime", "torch", "numpy"} <= set(manifest["versions"])
    assert manifest["versions"]["onnx"] not in ("", "absent")
    assert manifest["input"]["sha256"] == module_sha256(small_cnn, list(small_cnn.edgeopt_inputs))
    entry = manifest["artifacts"]["ort-cpu/fp32"]
    assert entry["sha256"] == sha256_file(out / entry["path"])
    assert [p["pass"] for p in entry["provenance"]] == TORCH_CHAIN
    assert entry["provenance"][0]["parent_sha256"] == manifest["input"]["sha256"]


def test_onnx_input_rebuilt_without_cache_is_identical(conv_onnx: Path, conv_npz: Path, tmp_path: Path) -> None:
    digest = sha256_file(conv_onnx)
    hashes = []
    for i in range(2):
        result = edgeopt.compile(str(conv_onnx), data=str(conv_npz), out=tmp_path / f"o{i}", cache=False,
                                 cache_dir=str(tmp_path / "cache"), **FAST)
        assert [p["cached"] for p in result.report["variants"][1]["passes"]] == [False] * 3
        hashes.append(_artifact_hashes(tmp_path / f"o{i}"))
    assert hashes[0] == hashes[1]
    assert not (tmp_path / "cache").exists()
    assert sha256_file(conv_onnx) == digest  # the input model is never modified


def test_dry_run_builds_and_writes_nothing(conv_onnx: Path, tmp_path: Path) -> None:
    result = edgeopt.compile(conv_onnx, out=tmp_path / "out", dry_run=True, cache_dir=str(tmp_path / "cache"))
    assert [pv.name for pv in result.plan] == ["ort-cpu/fp32"]
    assert [p.name for p in result.plan[0].pipeline.passes] == ["dynamic_batch", "simplify", "ort_optimize"]
    assert result.report is None and result.variants == []
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_extra_variants(conv_onnx: Path, tmp_path: Path) -> None:
    result = edgeopt.compile(conv_onnx, out=tmp_path / "out", cache_dir=str(tmp_path / "cache"),
                             extra_variants=[{"name": "plain", "passes": [{"simplify": {"onnxsim": False}}]}],
                             variants=["plain"], **FAST)
    names = [v["name"] for v in result.report["variants"]]
    assert names == ["reference", "ort-cpu/plain"]
    assert [p["pass"] for p in result.report["variants"][1]["passes"]] == ["simplify"]
    assert result.report["variants"][1]["fidelity"]["inputs"] == "random"  # no data given


def test_misspelled_option_names_the_field(conv_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="latncy") as info:
        edgeopt.compile(conv_onnx, out=tmp_path / "out", latncy={"iters": 5})
    assert "edgeopt schema" in str(info.value)
    with pytest.raises(ConfigError, match="latency.iterations"):
        edgeopt.compile(conv_onnx, out=tmp_path / "out", latency={"iterations": 5})
    assert not (tmp_path / "out").exists()


def test_every_plan_problem_at_once(conv_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(PipelineError) as info:
        edgeopt.compile(conv_onnx, target=["ort-cpu", "ort-cpuu"], out=tmp_path / "out",
                        extra_variants=[{"name": "x", "passes": ["simplfy", "export_onnx"]}])
    problems = info.value.problems
    assert any("unknown target 'ort-cpuu'" in p and "did you mean 'ort-cpu'?" in p for p in problems)
    assert any(p.startswith("ort-cpu/x: unknown pass 'simplfy'; did you mean 'simplify'?") for p in problems)
    assert "nothing was built" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_data_that_does_not_fit(conv_onnx: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 1, 9, 9), np.float32), y=np.zeros(4, np.int64))
    with pytest.raises(DataError, match="expects"):
        edgeopt.compile(conv_onnx, data=bad, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_declared_metric(conv_onnx: Path, conv_npz: Path, tmp_path: Path) -> None:
    """--metric top1 without labels is refused before any work; --metric cosine judges builds by per-sample cosine."""
    unlabelled = tmp_path / "x.npz"
    np.savez(unlabelled, x=np.load(conv_npz)["x"])
    with pytest.raises(ConfigError, match="needs labelled evaluation data"):
        edgeopt.compile(conv_onnx, data=unlabelled, metric="top1", out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    res = edgeopt.compile(conv_onnx, data=conv_npz, metric="cosine", out=tmp_path / "out", cache=False,
                          latency={"iters": 5})
    rec = res.report["recommendation"]
    assert rec["metric"] == "cosine" and "cosine" in rec["rule"]
    assert res.report["variants"][1]["fidelity"]["sample_cosine_mean"] > 0.9999
    assert all(p["metric"] == "cosine" for p in res.report["frontier"])


def test_a_failure_mid_build_leaves_no_partial_output(conv_onnx: Path, conv_npz: Path, tmp_path: Path) -> None:
    """The first variant builds and is copied out; the second fails the pipeline's numerical check (a pass that claims
    to preserve semantics but negates the outputs): the error propagates and nothing of this run stays in --out."""
    import onnx

    from edgeopt.artifacts.base import ArtifactKind
    from edgeopt.artifacts.onnx_model import OnnxModel
    from edgeopt.passes.base import Pass, PassConfig
    from edgeopt.passes.onnx.common import save_onnx
    from edgeopt.passes.registry import REGISTRY, register_pass

    if "negate_outputs_test" not in REGISTRY.names():
        @register_pass
        class NegateOutputs(Pass):
            name = "negate_outputs_test"
            version = "1"
            input_kind = output_kind = ArtifactKind.ONNX
            Config = PassConfig

            def run(self, model: Any, ctx: Any, out_path: Path) -> Any:
                proto = onnx.ModelProto()
                proto.CopyFrom(model.proto)
                out = proto.graph.output[0].name
                proto.graph.node[-1].output[0] = out + "_pre"
                proto.graph.node.append(onnx.helper.make_node("Neg", [out + "_pre"], [out]))
                save_onnx(proto, out_path)
                return OnnxModel.from_file(out_path)
    keep = tmp_path / "existing"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    for out in (tmp_path / "fresh", keep):
        with pytest.raises(PipelineError, match="changed the model's outputs"):
            edgeopt.compile(conv_onnx, data=conv_npz, out=out, cache=False, latency={"iters": 5},
                            extra_variants=[{"name": "broken", "passes": ["dynamic_batch", "negate_outputs_test"]}])
    assert not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in keep.rglob("*")) == ["notes.txt"]


def _parity(result: CompileResult, module: torch.nn.Module, shape: tuple[int, ...], ort_run) -> None:
    """The ort-cpu build matches PyTorch within 1e-4, per the report and on a fresh batch of 3."""
    var = result.report["variants"][1]
    assert var["status"] == "ok" and var["fidelity"]["max_abs"] <= 1e-4
    x = np.random.default_rng(7).standard_normal((3, *shape)).astype(np.float32)
    (got,) = ort_run(result.artifacts["ort-cpu/fp32"], {"input": x})
    with torch.no_grad():
        np.testing.assert_allclose(got, module(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-4)


def test_cifar_resnet20_factory_matches_pytorch(tmp_path: Path, ort_run) -> None:
    from edgeopt.models.resnet import cifar_resnet20_factory

    result = edgeopt.compile("edgeopt.models.resnet:cifar_resnet20_factory", out=tmp_path / "out",
                             cache_dir=str(tmp_path / "cache"), **FAST)
    _parity(result, cifar_resnet20_factory(), (3, 32, 32), ort_run)


@pytest.mark.slow
def test_resnet18_factory_matches_pytorch(tmp_path: Path, ort_run) -> None:
    from edgeopt.models.resnet import resnet18_factory

    result = edgeopt.compile("edgeopt.models.resnet:resnet18_factory", out=tmp_path / "out",
                             cache_dir=str(tmp_path / "cache"), **FAST)
    _parity(result, resnet18_factory(), (3, 224, 224), ort_run)
