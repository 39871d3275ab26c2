"""Calibration: one streaming pass equals whole-array statistics of the same tensors; the table round-trips as
deterministic JSON; bad calibration data is a DataError naming the problem and the fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.errors import ConfigError, DataError
from edgeopt.quant.calibration_table import CalibrationTable
from edgeopt.quant.collector import collect_statistics
from edgeopt.quant.graph import activation_tensors, static_op_types, with_outputs
from edgeopt.quant.ranges import METHODS
from edgeopt.quant.statistics import TensorStats
from edgeopt.quant.store import SHARED_DIR, SHARED_TABLES, calibrate


def _all_at_once(model: onnx.ModelProto, x: np.ndarray, tensors: list[str], batch: int) -> dict[str, TensorStats]:
    """Reference: keep every activation (same batches, so ORT's numbers are the same), reduce each whole array once."""
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # as the collector runs it
    session = ort.InferenceSession(with_outputs(model, tensors).SerializeToString(), so,
                                   providers=["CPUExecutionProvider"])
    parts = [session.run(tensors, {"x": x[i : i + batch]}) for i in range(0, len(x), batch)]
    out = {}
    for k, name in enumerate(tensors):
        out[name] = TensorStats()
        out[name].update(np.concatenate([p[k] for p in parts]))
    return out


def test_streaming_calibration_equals_whole_array(cnn: onnx.ModelProto, cnn_x: np.ndarray,
                                                  make_data: Callable[..., Any]) -> None:
    tensors = activation_tensors(cnn, static_op_types())
    assert {"x", "r1", "c2", "logits"} <= set(tensors)
    result = collect_statistics(cnn, make_data(cnn, cnn_x), tensors, batch_size=7)
    ref = _all_at_once(cnn, cnn_x, tensors, 7)
    assert result.samples == len(cnn_x)
    for name in tensors:
        got, want = result.stats[name], ref[name]
        assert (got.min, got.max, got.count) == (want.min, want.max, want.count), name
        np.testing.assert_array_equal(got.pos, want.pos, err_msg=name)
        np.testing.assert_array_equal(got.neg, want.neg, err_msg=name)


def test_table_round_trip_is_deterministic(cnn: onnx.ModelProto, cnn_x: np.ndarray, make_data: Callable[..., Any],
                                           tmp_path: Path) -> None:
    data = make_data(cnn, cnn_x)
    a = calibrate(cnn, data, method="entropy")
    b = calibrate(cnn, data, method="entropy")  # a second, independent collection
    pa, pb = a.save(tmp_path / "a.json"), b.save(tmp_path / "b.json")
    assert pa.read_bytes() == pb.read_bytes()
    loaded = CalibrationTable.load(pa)
    assert loaded.method == "entropy" and loaded.samples == 96 and loaded.tensors == a.tensors
    for method in METHODS:
        assert loaded.ranges(method) == a.ranges(method)
    assert loaded.ranges(symmetric=True)["r1"][0] == -loaded.ranges(symmetric=True)["r1"][1]
    assert loaded.to_json() == a.to_json()


def test_ranges_only_table(cnn: onnx.ModelProto, cnn_x: np.ndarray, make_data: Callable[..., Any],
                           tmp_path: Path) -> None:
    table = calibrate(cnn, make_data(cnn, cnn_x), method="percentile", percentile=99.9)
    path = table.save(tmp_path / "ranges.json", histograms=False)
    compact = CalibrationTable.load(path)
    assert not compact.has_histograms and compact.ranges() == table.ranges()
    with pytest.raises(ConfigError, match="keeps only 'percentile' ranges"):
        compact.ranges("minmax")


def test_damaged_and_foreign_tables(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        CalibrationTable.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"schema": "something/1"}')
    with pytest.raises(DataError, match="not an edgeopt calibration table"):
        CalibrationTable.load(tmp_path / "other.json")
    with pytest.raises(DataError, match="does not exist"):
        CalibrationTable.load(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="unknown calibration method"):
        CalibrationTable({}, "kl")


def test_calibrate_once_per_model_and_data(cnn: onnx.ModelProto, cnn_x: np.ndarray, make_data: Callable[..., Any],
                                           tmp_path: Path) -> None:
    shared: dict[str, Any] = {SHARED_DIR: str(tmp_path / "tables")}
    data = make_data(cnn, cnn_x)
    first = calibrate(cnn, data, method="minmax", shared=shared)
    again = calibrate(cnn, data, method="mse", shared=shared)  # same statistics, other method: no recollection
    assert len(shared[SHARED_TABLES]) == 1 and again.stats["r1"] is first.stats["r1"] and again.method == "mse"
    fresh: dict[str, Any] = {SHARED_DIR: str(tmp_path / "tables")}  # a later compile: read back from disk
    later = calibrate(cnn, data, method="minmax", shared=fresh)
    assert later.to_json() == first.to_json()
    other = calibrate(cnn, data.subset(0, 50), shared=shared)  # other data: another table
    assert other.samples == 50 and len(shared[SHARED_TABLES]) == 2


def test_memory_does_not_grow_with_samples(cnn: onnx.ModelProto, make_data: Callable[..., Any]) -> None:
    """Peak Python/numpy allocation while calibrating 40 or 800 samples is the same (one batch of activations)."""
    import tracemalloc

    tensors = activation_tensors(cnn, static_op_types())
    rng = np.random.default_rng(0)
    peaks = []
    for n in (40, 800):
        data = make_data(cnn, rng.standard_normal((n, 3, 12, 12)).astype(np.float32), labels=False)
        tracemalloc.start()
        result = collect_statistics(cnn, data, tensors, batch_size=8)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert result.samples == n
    assert peaks[1] < 1.3 * peaks[0]


# -- bad calibration data -------------------------------------------------------------------------------------------
def _unbound(arrays: dict[str, np.ndarray]) -> Any:
    from edgeopt.data import load_data

    return load_data(arrays)


def test_wrong_shape(cnn: onnx.ModelProto) -> None:
    data = _unbound({"x": np.zeros((4, 3, 10, 10), np.float32)})
    with pytest.raises(DataError, match=r"shape \[N,3,10,10\] but the model expects"):
        calibrate(cnn, data)


def test_wrong_layout(cnn: onnx.ModelProto) -> None:
    data = _unbound({"x": np.zeros((4, 12, 12, 3), np.float32)})
    with pytest.raises(DataError, match="NHWC .* expects NCHW.*set preprocess.layout: NCHW"):
        calibrate(cnn, data)


def test_wrong_dtype() -> None:
    """Float data for a model that takes token ids."""
    table = numpy_helper.from_array(np.ones((16, 8), np.float32), "emb")
    w = numpy_helper.from_array(np.ones((8, 2), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["emb", "ids"], ["e"]), helper.make_node("MatMul", ["e", "w"], ["y"])], "ids",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4, 2])], [table, w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(DataError, match="is float32 but the model expects int64"):
        calibrate(model, _unbound({"ids": np.zeros((4, 4), np.float32)}))


def test_nan_and_inf(cnn: onnx.ModelProto, cnn_x: np.ndarray) -> None:
    x = cnn_x[:10].copy()
    x[6, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="sample 6 .* contains NaN"):
        calibrate(cnn, _unbound({"x": x}))
    x[6, 0, 0, 0] = np.inf
    with pytest.raises(DataError, match="contains Inf"):
        calibrate(cnn, _unbound({"x": x}))


def test_overflow_inside_the_model(cnn: onnx.ModelProto) -> None:
    x = np.full((2, 3, 12, 12), 3e38, np.float32)  # finite input, Inf activations
    with pytest.raises(DataError, match="becomes NaN or Inf.*preprocessing"):
        calibrate(cnn, _unbound({"x": x}))


def test_fewer_samples_than_asked(cnn: onnx.ModelProto, cnn_x: np.ndarray) -> None:
    with pytest.raises(DataError, match="has 96 samples but 500 were asked for; lower --calibration-samples to 96"):
        calibrate(cnn, _unbound({"x": cnn_x}), samples=500)
    with pytest.raises(DataError, match="has no samples"):
        calibrate(cnn, _unbound({"x": cnn_x}).subset(0, 0))


def test_wrong_input_name(cnn: onnx.ModelProto, cnn_x: np.ndarray) -> None:
    with pytest.raises(DataError, match="do not match the model inputs .*name the arrays"):
        calibrate(cnn, _unbound({"a": cnn_x[:4], "b": cnn_x[:4]}))
