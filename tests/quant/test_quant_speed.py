"""Speed awareness: interleaved timing of builds, what ONNX Runtime leaves unfused, and the diagnosis sentences."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from edgeopt.quant import ORT_X86, calibrate, emit_qdq, prepare_model
from edgeopt.quant.speed import diagnose, quantized_depthwise, runtime_graph, time_builds


def _with_softmax(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.node.append(helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1))
    out.graph.output[0].name = "probs"
    return out


def test_unfused_dequantize_is_found(cnn: onnx.ModelProto, cnn_x: np.ndarray, make_data: Callable[..., Any],
                                     tmp_path: Path) -> None:
    model = prepare_model(_with_softmax(cnn), tmp_path)
    table = calibrate(model, make_data(model, cnn_x, labels=False))
    r = emit_qdq(model, table, ORT_X86)
    rt = runtime_graph(r.model, tmp_path)
    assert rt.ops["QLinearConv"] == 3 and rt.unfused_dq == 1 and rt.unfused_consumers == {"Softmax": 1}


def test_diagnosis_sentences(cnn: onnx.ModelProto, cnn_x: np.ndarray, make_data: Callable[..., Any],
                             tmp_path: Path) -> None:
    model = prepare_model(cnn, tmp_path)
    r = emit_qdq(model, calibrate(model, make_data(model, cnn_x)), ORT_X86.model_copy(update={"exclude_nodes": ["fc"]}))
    assert quantized_depthwise(model, r.float_nodes) == ["dwconv"]
    found, _ = diagnose(model, r.model, r.float_nodes, 0.8, 0.05, tmp_path,
                        machine={"arch": "x86_64", "int8_dot_product": False})
    text = " | ".join(found)
    assert found[0] == "INT8 runs at 0.80x the speed of FP32 on this machine (slower)"
    assert "1 of 4 compute nodes stay float: fc" in text
    assert "1 depthwise convs run as int8" in text and "no VNNI" in text and "the model is tiny" in text


def test_time_builds_interleaves(cnn: onnx.ModelProto) -> None:
    x = {"x": np.zeros((1, 3, 12, 12), np.float32)}
    lat = time_builds({"fp32": cnn, "copy": cnn}, x, threads=1, iters=6, warmup=1)
    assert set(lat.samples_ms) == {"fp32", "copy"} and lat.samples_ms["copy"].size == 6
    assert 0.2 < (lat.speedup("copy") or 0) < 5
