"""What a compile with --quantize leaves behind: the calibration table beside the build, the 'quantization' and
'diagnosis' fields of report rows, and a recommendation that never hides an INT8 build slower than FP32."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx

import edgeopt
from edgeopt.quant.calibration_table import CalibrationTable
from edgeopt.quant.record import attach, report_fields
from edgeopt.report.recommend import recommend


def _row(name: str, precision: str, median: float, speedup: float, **extra: Any) -> dict[str, Any]:
    return {"name": name, "target": "ort-cpu", "precision": precision, "status": "ok", "accuracy": None,
            "fidelity": {"top1_agreement": 1.0, "cosine": 1.0}, "latency_ms": {"median": median},
            "speedup_vs_baseline": speedup, **extra}


def test_recommendation_names_slow_int8_builds() -> None:
    ref = _row("reference", "fp32", 1.0, 1.0)
    fp32 = _row("ort-cpu/fp32", "fp32", 1.0, 1.0)
    slow = _row("ort-cpu/int8", "int8", 1.25, 0.8, diagnosis=["INT8 runs at 0.80x", "12 depthwise convs run as int8"])
    rec = recommend([fp32, slow], ref, 1.0)
    assert rec["variant"] == "ort-cpu/fp32"
    assert any("INT8 is slower than ort-cpu/fp32 (0.80x); 12 depthwise convs" in r for r in rec["rejected"])
    only = recommend([slow], ref, 1.0)  # no faster build qualifies: chosen, and the reason says why it is slow
    assert only["variant"] == "ort-cpu/int8" and "SLOWER" in only["reason"] and "depthwise" in only["reason"]


def test_report_fields_from_the_build(cnn: onnx.ModelProto) -> None:
    model = onnx.ModelProto()
    model.CopyFrom(cnn)
    attach(model, {"mode": "static", "sensitivity_db": {"a": 30.0, "b": 12.0}, "diagnosis": []})
    fields = report_fields(model, {"speedup_vs_baseline": 0.9, "status": "ok"})
    assert fields["quantization"]["most_sensitive_db"] == {"b": 12.0, "a": 30.0}
    assert fields["diagnosis"] == ["measured in this report: 0.90x the speed of the reference (slower)"]
    assert report_fields(cnn, {}) == {}


def test_compile_with_quantize_auto(tmp_path: Path, cnn_file: Any, make_data: Any, cnn: onnx.ModelProto) -> None:
    from quant_builders import float_predictions

    rng = np.random.default_rng(7)
    x = rng.standard_normal((64, 3, 12, 12)).astype(np.float32)
    np.savez(tmp_path / "eval.npz", x=x, y=float_predictions(cnn, x))
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((32, 3, 12, 12)).astype(np.float32))
    options = {"target": "ort-cpu", "data": str(tmp_path / "eval.npz"), "calibration": str(tmp_path / "calib.npz"),
               "quantize": "auto", "calibration_method": "percentile", "cache_dir": str(tmp_path / "cache"),
               "latency": {"iters": 5, "warmup": 1, "threads": 1}}
    result = edgeopt.compile(str(cnn_file.path), out=str(tmp_path / "out"), **options)
    rows = {v["name"]: v for v in result.report["variants"]}
    static, dynamic = rows["ort-cpu/int8"], rows["ort-cpu/int8-dynamic"]
    assert static["quantization"]["mode"] == "static" and static["quantization"]["method"] == "percentile"
    assert isinstance(static["diagnosis"], list) and dynamic["quantization"]["mode"] == "dynamic"
    assert any(n.startswith("quantize_static: calibration: percentile") for n in static["notes"])
    table_path = tmp_path / "out" / "artifacts" / "ort-cpu-int8.calibration.json"
    table = CalibrationTable.load(table_path)
    assert table.has_histograms and table.method == "percentile" and table.samples == 32
    assert json.loads(table_path.read_text())["schema"] == "edgeopt.calibration/1"
    # Built again from the cache: the same table bytes (read back from the calibration cache on disk).
    edgeopt.compile(str(cnn_file.path), out=str(tmp_path / "out2"), **options)
    assert (tmp_path / "out2" / "artifacts" / "ort-cpu-int8.calibration.json").read_bytes() == table_path.read_bytes()
