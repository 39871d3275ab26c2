"""Accuracy and fidelity of real ONNX Runtime builds in one streaming pass; measure_variants end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.backends.ort.backend import OrtBackend
from edgeopt.config import CompileConfig
from edgeopt.data import load_data
from edgeopt.evaluate.accuracy import AccuracyStats, evaluate_runners
from edgeopt.evaluate.variants import REFERENCE, measure_variants
from edgeopt.progress import Progress


def _batch_one_reshape(path: Path) -> Path:
    """Claims a dynamic batch but reshapes to [1, 64]: fails at run time for any batch > 1."""
    w = np.random.default_rng(0).standard_normal((64, 10)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["r"]), helper.make_node("MatMul", ["r", "w"], ["logits"])],
        "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(np.array([1, 64], np.int64), "shape"), numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture
def runners(conv_onnx_dynamic: Path, make_conv_classifier, tmp_path: Path) -> dict:
    other = tmp_path / "other.onnx"
    other.write_bytes(make_conv_classifier("batch", seed=1).SerializeToString())
    load = OrtBackend().load
    return {
        "ref": load(OnnxModel.from_file(conv_onnx_dynamic), threads=1),
        "same": load(OnnxModel.from_file(conv_onnx_dynamic), threads=1),
        "other": load(OnnxModel.from_file(other), threads=1),
        "broken": load(OnnxModel.from_file(_batch_one_reshape(tmp_path / "broken.onnx")), threads=1),
    }


def test_accuracy_stats() -> None:
    stats = AccuracyStats()
    scores = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    stats.update(scores[:2], np.array([1, 2]))
    stats.update(scores[2:], np.array([[0]]))
    assert stats.result() == {"top1": 1 / 3, "top5": 1.0, "correct": 1, "n": 3}


def test_evaluate_runners(runners: dict, conv_onnx_dynamic: Path, conv_npz: Path, ort_run) -> None:
    specs = OnnxModel.from_file(conv_onnx_dynamic).input_specs()
    data = load_data(conv_npz, specs)
    seen: list[tuple[int, int]] = []
    results = evaluate_runners(runners, data, "ref", batch_size=10, progress=lambda a, b: seen.append((a, b)))
    assert seen == [(10, 24), (20, 24), (24, 24)]
    raw = np.load(conv_npz)
    logits = ort_run(conv_onnx_dynamic, {"x": raw["x"]})[0]
    correct = int(np.sum(np.argmax(logits, axis=1) == raw["y"]))
    assert results["ref"]["accuracy"]["correct"] == correct and results["ref"]["accuracy"]["n"] == 24
    assert results["ref"]["fidelity"] is None
    assert results["same"]["accuracy"] == results["ref"]["accuracy"]
    assert results["same"]["fidelity"]["max_abs"] == 0.0 and results["same"]["fidelity"]["top1_agreement"] == 1.0
    assert results["other"]["fidelity"]["max_abs"] > 0.1 and results["other"]["fidelity"]["cosine"] < 0.999
    broken = results["broken"]
    assert broken["error"] and broken["accuracy"] is None and broken["fidelity"] is None  # reported, not fatal


def _cfg(**latency) -> CompileConfig:
    return CompileConfig(model="m.onnx", latency={"iters": 5, "warmup": 1, "threads": 1, **latency})


def test_measure_variants_with_data(conv_onnx: Path, conv_onnx_dynamic: Path, conv_npz: Path) -> None:
    source = OnnxModel.from_file(conv_onnx)  # fixed batch 1: the reference runs sample by sample
    data = load_data(conv_npz, source.input_specs())
    built = {"ort-cpu/fp32": (OrtBackend(), OnnxModel.from_file(conv_onnx_dynamic))}
    meas = measure_variants(source, built, data, _cfg(), Progress(enabled=False))
    ref, var = meas.metrics[REFERENCE], meas.metrics["ort-cpu/fp32"]
    assert ref["accuracy"] == var["accuracy"] and var["accuracy"]["n"] == 24
    assert var["fidelity"]["max_abs"] <= 1e-6
    for m in (ref, var):
        assert m["latency_ms"]["n"] == 5 and 0 < m["latency_ms"]["median"] <= m["latency_ms"]["p90"]
    assert ref["speedup_vs_baseline"] == 1.0 and var["speedup_vs_baseline"] > 0
    assert meas.threads == 1 and meas.runtimes["ort-cpu/fp32"]["threads"] == 1


def test_measure_variants_without_data_and_with_a_bad_build(
    conv_onnx: Path, conv_onnx_dynamic: Path, tmp_path: Path
) -> None:
    source = OnnxModel.from_file(conv_onnx)
    gone = tmp_path / "gone.onnx"
    gone.write_bytes(conv_onnx_dynamic.read_bytes())
    vanished = OnnxModel.from_file(gone)
    gone.unlink()  # the build's file disappears before it is loaded
    built = {"good": (OrtBackend(), OnnxModel.from_file(conv_onnx_dynamic)), "bad": (OrtBackend(), vanished)}
    meas = measure_variants(source, built, None, _cfg(), Progress(enabled=False))
    assert meas.metrics["good"]["fidelity"]["inputs"] == "random"
    assert meas.metrics["good"]["fidelity"]["max_abs"] <= 1e-6 and meas.metrics["good"]["accuracy"] is None
    assert meas.metrics["bad"]["error"].startswith("load failed")
    assert "latency_ms" not in meas.metrics["bad"]
