"""Per-node sensitivity: each quantized node's SQNR, isolated from upstream error, ranks the harmful node first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from edgeopt.quant import ORT_X86, calibrate, emit_qdq, node_sqnr, prepare_model, rank_nodes


def test_badly_ranged_node_ranks_first(cnn: onnx.ModelProto, cnn_x: np.ndarray, make_data: Callable[..., Any],
                                       tmp_path: Path) -> None:
    model = onnx.ModelProto()
    model.CopyFrom(cnn)
    w = next(i for i in model.graph.initializer if i.name == "c2_w")
    value = numpy_helper.to_array(w).copy()
    value[0] *= 300.0  # one huge output channel: per-tensor int8 weights crush the other 15
    w.CopyFrom(numpy_helper.from_array(value, "c2_w"))
    model = prepare_model(model, tmp_path)
    data = make_data(model, cnn_x)
    table = calibrate(model, data)
    qdq = emit_qdq(model, table, ORT_X86.model_copy(update={"per_channel": False})).model
    sqnr = node_sqnr(model, qdq, data, samples=16)
    assert sorted(sqnr) == ["conv1", "conv2", "dwconv", "fc"]
    assert rank_nodes(sqnr)[0] == "conv2"
    assert all(v > sqnr["conv2"] for k, v in sqnr.items() if k != "conv2")


def test_float_nodes_have_no_sensitivity(cnn: onnx.ModelProto, cnn_x: np.ndarray, make_data: Callable[..., Any],
                                         tmp_path: Path) -> None:
    model = prepare_model(cnn, tmp_path)
    data = make_data(model, cnn_x)
    qdq = emit_qdq(model, calibrate(model, data), ORT_X86.model_copy(update={"exclude_nodes": ["conv1"]})).model
    assert "conv1" not in node_sqnr(model, qdq, data, samples=8)
