"""`--target trt-gpu` through the CLI on a machine without TensorRT or a GPU: the TensorRT-ready ONNX and the exact
trtexec command are written, the status says why no engine was built, and bad inputs fail validation."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgeopt.backends.tensorrt.backend import TensorrtBackend
from edgeopt.backends.tensorrt.placement import check_placement
from edgeopt.cli import main

pytestmark = pytest.mark.skipif(TensorrtBackend.availability() is None, reason="TensorRT and a GPU are present")


def _compile(model: Path, out: Path, *extra: str) -> int:
    return main(["compile", str(model), "--target", "trt-gpu", "--out", str(out), "--quiet", "--iters", "5",
                 "--cache-dir", str(out.parent / "cache"), *extra])


def _dynamic_h_model(tmp_path: Path) -> Path:
    """A one-Relu model whose input has a second dynamic dim 'h' besides the batch."""
    shape = ["batch", 3, "h", 8]
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    path = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_compile_writes_onnx_and_trtexec_command(residual_onnx: Path, residual_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _compile(residual_onnx, out, "--quantize", "static", "--calibration", str(residual_npz)) == 0
    report = json.loads((out / "report.json").read_text())
    rows = {v["name"]: v for v in report["variants"]}
    assert rows["reference"]["precision"] == "fp32"
    assert report["recommendation"]["reason"].startswith("no build was timed on this machine")
    why = TensorrtBackend.availability()
    for name, flags in (("trt-gpu/int8", ["--int8", "--fp16"]), ("trt-gpu/fp16", ["--fp16"])):
        row = rows[name]
        assert row["status"] == f"engine not built: {why}"
        assert row["latency_ms"] is None and row["speedup_vs_baseline"] is None and row["engine"] is None
        args = shlex.split(row["build_command"])
        assert args[0] == "trtexec" and all(f in args for f in flags)
        assert ("--int8" in args) == (name.endswith("int8"))
        stem = name.replace("/", "-")
        assert f"--onnx=artifacts/{stem}.onnx" in args and f"--saveEngine=artifacts/{stem}.engine" in args
        assert {"--minShapes=x:1x3x8x8", "--optShapes=x:1x3x8x8", "--maxShapes=x:32x3x8x8"} <= set(args)
        script = out / row["build_script"]
        assert script.is_file() and row["build_command"] in script.read_text()
        assert any(n.startswith(f"engine not built ({why})") and row["build_script"] in n and row["build_command"] in n
                   for n in row["notes"])  # the report people read says how to build it
        assert not (out / "artifacts" / f"{stem}.engine").exists()  # nothing pretends to be an engine
    assert "run artifacts/trt-gpu-int8.trtexec.sh, which is `trtexec " in (out / "report.md").read_text()
    int8 = onnx.load(str(out / rows["trt-gpu/int8"]["artifact"]))
    assert check_placement(int8) == [] and any(n.op_type == "QuantizeLinear" for n in int8.graph.node)
    assert rows["trt-gpu/int8"]["trt_precision"] == "int8+fp16"
    # The build carries its record and the symmetric ranges TensorRT gets; the sidecar table sits beside it.
    record = rows["trt-gpu/int8"]["quantization"]
    assert record["format"] == "tensorrt"
    # Checked like every INT8 build: the default 1-point budget, judged here on the calibration samples.
    assert record["budget_points"] == 1.0 and record["score"]["n"] == 32 and record["steps"]
    assert record["budget_met"] == (record["score"]["drop_points"] <= 1.0)
    assert any("under ONNX Runtime" in n for n in rows["trt-gpu/int8"]["notes"])
    table = json.loads((out / "artifacts" / "trt-gpu-int8.calibration.json").read_text())
    assert table["tensors"] and all(t["range"][0] == -t["range"][1] for t in table["tensors"].values())


def test_int8_without_calibration_fails_dry_run(residual_onnx: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert _compile(residual_onnx, tmp_path / "out", "--quantize", "static", "--dry-run") == 2
    err = capsys.readouterr().err
    assert "trt-gpu/int8" in err and "qdq_tensorrt" in err and "--calibration" in err


def test_dynamic_dim_without_range_fails_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _dynamic_h_model(tmp_path)
    assert _compile(path, tmp_path / "out", "--variant", "fp16", "--dry-run") == 2
    err = capsys.readouterr().err
    assert "dynamic dimension 2 'h'" in err and "dim_ranges" in err


def test_declared_dim_range_is_used(tmp_path: Path, repo_root: Path) -> None:
    import yaml

    path = _dynamic_h_model(tmp_path)
    profile = yaml.safe_load((repo_root / "targets" / "trt-gpu.yaml").read_text())
    profile["options"]["dim_ranges"] = {"h": [4, 8, 16]}
    target = tmp_path / "my-trt.yaml"
    target.write_text(yaml.safe_dump(profile))
    out, data = tmp_path / "out", tmp_path / "data.npz"
    np.savez(data, x=np.ones((2, 3, 8, 8), np.float32))
    code = main(["compile", str(path), "--target", str(target), "--variant", "fp16", "--out", str(out), "--quiet",
                 "--iters", "5", "--cache-dir", str(tmp_path / "cache"), "--data", str(data)])
    assert code == 0
    row = json.loads((out / "report.json").read_text())["variants"][1]
    assert "--minShapes=x:1x3x4x8" in row["build_command"] and "--maxShapes=x:32x3x16x8" in row["build_command"]


def test_asymmetric_qdq_model_is_refused_as_is_and_converted_by_int8(
    ort_default_qdq: Path, residual_npz: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert _compile(ort_default_qdq, out, "--quantize", "static", "--calibration", str(residual_npz)) == 0
    rows = {v["name"]: v for v in json.loads((out / "report.json").read_text())["variants"]}
    assert rows["reference"]["precision"] == "int8"  # the model as given carries Q/DQ
    fp16 = rows["trt-gpu/fp16"]
    assert fp16["status"].startswith("failed: not TensorRT-ready") and "zero-point" in fp16["status"]
    assert "build_command" not in fp16 and fp16["placement_violations"]
    int8 = rows["trt-gpu/int8"]
    assert int8["status"].startswith("engine not built") and int8["placement_violations"] == []
    assert any("re-emitted symmetric" in n for n in int8["notes"])


def _det_model(tmp_path: Path) -> Path:
    """x[batch,4,4] -> Relu -> Det: ONNX Runtime runs it, TensorRT 10's ONNX parser has no importer for Det."""
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["r"], name="relu"),
                               helper.make_node("Det", ["r"], ["y"], name="det")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])])
    path = tmp_path / "det.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_ops_the_parser_lacks_are_named_without_tensorrt(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """No parser here to ask: the build still writes the ONNX and trtexec command, and the row names the node whose
    op TensorRT's parser lacks, so the failure is known before anyone runs trtexec on the GPU machine."""
    model = _det_model(tmp_path)
    out = tmp_path / "out"
    assert _compile(model, out) == 0
    row = {v["name"]: v for v in json.loads((out / "report.json").read_text())["variants"]}["trt-gpu/fp16"]
    assert row["status"] == f"engine not built: {TensorrtBackend.availability()}" and row["build_command"]
    assert row["parser_unsupported"] == ["Det 'det'"]
    assert any("TensorRT 10.1's ONNX parser has no importer for: Det 'det'" in n for n in row["notes"])
    capsys.readouterr()
    assert main(["inspect", str(model), "--target", "trt-gpu", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["target"]["ops TensorRT's ONNX parser lacks"] == ["Det 'det'"]


def test_inspect_prints_violations(ort_default_qdq: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(ort_default_qdq), "--target", "trt-gpu"]) == 0
    text = capsys.readouterr().out
    assert "target trt-gpu:" in text and "[error zero-point] QuantizeLinear" in text
    assert "[error float-bias] Conv 'conv1'" in text and "fix:" in text


def test_inspect_clean_model(residual_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(residual_onnx), "--target", "trt-gpu", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["target"]
    assert info["violations"] == [] and info["builder precision"] == "fp16"
    assert info["ops TensorRT's ONNX parser lacks"] == []
    assert np.all([info["placement"] == "ok"])
