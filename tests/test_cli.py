"""The `edgeopt` command in-process: every verb, exit codes, one-line errors, and no partial output on bad input."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch  # noqa: F401 - imported before any capture, so torch's log handlers keep a live stream
import yaml
from onnx import TensorProto, helper

from edgeopt.cli import main
from edgeopt.config import CompileConfig
from edgeopt.fileio import sha256_file

HEADER = "| variant | target | precision | status | size MB | accuracy | latency ms median | speed-up vs baseline |"
OUTPUTS = ("report.json", "report.md", "manifest.json", "artifacts")


class Trap:
    """Unpickling this calls open(marker, 'w'): harmless, and the marker file proves the call happened."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _no_outputs(out: Path) -> bool:
    return not any((out / name).exists() for name in OUTPUTS)


@pytest.fixture
def compile_args(tmp_path: Path) -> Callable[..., list[str]]:
    """`compile MODEL ... --out tmp/out --cache-dir tmp/cache --iters 5 --quiet`."""

    def args(model: str | Path, *extra: str) -> list[str]:
        return ["compile", str(model), *extra, "--out", str(tmp_path / "out"), "--cache-dir",
                str(tmp_path / "cache"), "--iters", "5", "--quiet"]

    return args


# ---------------------------------------------------------------------------------------------- verbs that succeed


def test_compile(capsys, compile_args, conv_onnx: Path, conv_npz: Path, tmp_path: Path) -> None:
    digest = sha256_file(conv_onnx)
    rc, out, _ = _run(capsys, *compile_args(conv_onnx, "--data", str(conv_npz)))
    assert rc == 0
    assert HEADER in out and f"wrote {tmp_path / 'out' / 'report.json'}" in out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [v["status"] for v in report["variants"]] == ["ok", "ok"]
    assert report["variants"][1]["accuracy"]["n"] == 24
    assert (tmp_path / "out" / "artifacts" / "ort-cpu-fp32.onnx").is_file()
    assert sha256_file(conv_onnx) == digest  # the input model is never modified


def test_mnist_acceptance(capsys, compile_args, mnist_onnx: Path, repo_root: Path, tmp_path: Path) -> None:
    recipe = repo_root / "calibration" / "mnist-eval.yaml"
    digest = sha256_file(mnist_onnx)
    rc, out, err = _run(capsys, *compile_args(mnist_onnx, "--data", str(recipe)))
    assert rc == 0, err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["data"]["n"] == 9000 and report["data"]["split"] == [{"start": -9000, "stop": None}]
    ref, fp32 = report["variants"]
    for v in (ref, fp32):
        assert v["accuracy"]["correct"] == 8954 and v["accuracy"]["n"] == 9000
    simplify = next(p for p in fp32["passes"] if p["pass"] == "simplify")
    assert simplify["check"]["inputs"] == "real" and simplify["check"]["max_abs"] <= 1e-5
    assert fp32["fidelity"]["max_abs"] <= 1e-5 and fp32["fidelity"]["top1_agreement"] == 1.0
    assert "99.49%" in out
    assert sha256_file(mnist_onnx) == digest


def test_dry_run(capsys, compile_args, conv_onnx: Path, tmp_path: Path) -> None:
    rc, out, _ = _run(capsys, *compile_args(conv_onnx, "--dry-run"))
    assert rc == 0
    assert "dry run ok: 1 variant(s) would be built" in out
    assert "ort-cpu/fp32: dynamic_batch -> simplify -> ort_optimize" in out
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_save_config_then_config(capsys, compile_args, conv_onnx: Path, conv_npz: Path, tmp_path: Path) -> None:
    saved = tmp_path / "edgeopt.yaml"
    args = compile_args(conv_onnx, "--data", str(conv_npz), "--input-shape", "x:1,1,8,8", "--save-config", str(saved))
    rc, out, _ = _run(capsys, *args)
    assert rc == 0 and f"wrote {saved}" in out
    assert not (tmp_path / "out").exists()  # --save-config only writes the config
    cfg = CompileConfig.from_yaml(saved)
    assert cfg.model == str(conv_onnx) and cfg.data == str(conv_npz) and cfg.latency.iters == 5
    assert cfg.input_shapes == {"x": [1, 1, 8, 8]} and cfg.out == str(tmp_path / "out")
    rc, out, _ = _run(capsys, "compile", "--config", str(saved), "--dry-run")
    assert rc == 0 and "dry run ok" in out
    rc, out, _ = _run(capsys, "compile", "--config", str(saved), "--quiet", "--seed", "3")
    assert rc == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["config"]["data"] == str(conv_npz)  # flags override the file


def test_inspect(capsys, conv_onnx: Path) -> None:
    rc, out, _ = _run(capsys, "inspect", str(conv_onnx))
    assert rc == 0
    assert "input  x: float32[1,1,8,8]" in out and "output logits: float32[1,10]" in out
    assert "parameters: 90" in out and "Conv x1" in out and "opset: 17" in out
    rc, out, _ = _run(capsys, "inspect", str(conv_onnx), "--json", "--target", "ort-cpu")
    assert rc == 0
    info = json.loads(out)
    assert info["inputs"] == [{"name": "x", "shape": [1, 1, 8, 8], "dtype": "float32"}]
    assert info["ops"] == {"Conv": 1, "Flatten": 1, "Gemm": 1, "GlobalAveragePool": 1, "Relu": 1}
    assert info["sha256"] == sha256_file(conv_onnx) and info["target"]["name"] == "ort-cpu"


def test_inspect_lists_nodes_by_name(capsys, conv_onnx: Path) -> None:
    rc, out, _ = _run(capsys, "inspect", str(conv_onnx), "--nodes", "--json")
    assert rc == 0
    nodes = json.loads(out)["nodes"]
    proto = onnx.load(str(conv_onnx))
    assert [n["op"] for n in nodes] == [n.op_type for n in proto.graph.node]
    assert all(n["name"] for n in nodes) and len({n["name"] for n in nodes}) == len(nodes)
    rc, out, _ = _run(capsys, "inspect", str(conv_onnx), "--nodes")
    assert rc == 0 and f"nodes ({len(nodes)}, in graph order):" in out
    assert any(line.split() == [nodes[0]["name"], nodes[0]["op"]] for line in out.splitlines())
    rc, _, err = _run(capsys, "inspect", "edgeopt.models.resnet:cifar_resnet", "--input-shape", "input:1,3,32,32",
                      "--nodes")
    assert rc == 2 and "ONNX model" in err and "artifacts/" in err


def test_inspect_factory_with_input_shape(capsys) -> None:
    rc, out, _ = _run(capsys, "inspect", "edgeopt.models.resnet:cifar_resnet", "--input-shape", "input:1,3,32,32",
                      "--json")
    assert rc == 0
    info = json.loads(out)
    assert info["kind"] == "torch" and info["inputs"][0]["shape"] == [1, 3, 32, 32]
    assert info["ops"]["Conv2d"] == 21 and info["parameters"] > 250_000  # 19 3x3 convs + 2 1x1 shortcuts


def test_targets(capsys) -> None:
    rc, out, _ = _run(capsys, "targets")
    assert rc == 0
    line = next(x for x in out.splitlines() if x.startswith("ort-cpu "))
    assert "backend ort" in line and "variants: fp32" in line and line.endswith("available")


def test_schema(capsys) -> None:
    rc, out, _ = _run(capsys, "schema")
    assert rc == 0
    schema = json.loads(out)
    assert schema["additionalProperties"] is False and schema["required"] == ["model"]
    assert {"model", "target", "data", "latency", "extra_variants", "cache_dir"} <= set(schema["properties"])


def test_demo(capsys, tmp_path: Path) -> None:
    rc, _, err = _run(capsys, "demo", "--out", str(tmp_path / "demo"), "--quiet")
    assert rc == 0, err
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    names = [v["name"] for v in report["variants"]]
    assert names[0] == "reference" and "ort-cpu/fp32" in names
    ref = report["variants"][0]
    assert ref["target"] == "pytorch" and ref["accuracy"]["top1"] > 0.8  # the CNN really learned the digits
    assert (tmp_path / "demo" / "model" / "digits_cnn.pt2").is_file()


# --------------------------------------------------------------------------------------------------- exit codes


def _assert_user_error(rc: int, err: str, *fragments: str) -> str:
    assert rc == 2
    assert err.endswith("\n") and err.count("\n") == 1, err  # exactly one line
    message = err.strip()
    assert message.startswith("edgeopt: error: ") and "; " in message  # the problem; the fix
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_no_model(capsys) -> None:
    rc, _, err = _run(capsys, "compile")
    _assert_user_error(rc, err, "no model given", "--config")


def test_config_file_typo_names_the_field(capsys, conv_onnx: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"model": str(conv_onnx), "tagret": ["ort-cpu"], "out": str(tmp_path / "out")}))
    rc, _, err = _run(capsys, "compile", "--config", str(cfg))
    _assert_user_error(rc, err, "tagret", "edgeopt schema")
    assert not (tmp_path / "out").exists()


def test_debug_shows_a_traceback(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.onnx")
    plain = subprocess.run([sys.executable, "-m", "edgeopt.cli", "compile", missing], capture_output=True, text=True,
                           timeout=120)
    assert plain.returncode == 2
    assert plain.stderr.strip().splitlines() == [f"edgeopt: error: model file {missing} does not exist; check the path"]
    debug = subprocess.run([sys.executable, "-m", "edgeopt.cli", "--debug", "compile", missing], capture_output=True,
                           text=True, timeout=120)
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr and "ModelFileError" in debug.stderr


# ------------------------------------------------------------------------------------------------ bad inputs


def _int_input_model(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Cast", ["ids"], ["f"], to=TensorProto.FLOAT), helper.make_node("Relu", ["f"], ["y"])],
        "ids",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def _escaping_model(folder: Path) -> Path:
    (folder / "secret.bin").write_bytes(np.ones(4, np.float32).tobytes())
    inner = folder / "model"
    inner.mkdir()
    w = TensorProto()
    w.name, w.data_type, w.data_location = "w", TensorProto.FLOAT, TensorProto.EXTERNAL
    w.dims.extend([4])
    for key, value in (("location", "../secret.bin"), ("offset", "0"), ("length", "16")):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w],
    )
    path = inner / "m.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


def _npz(path: Path, x: np.ndarray) -> Path:
    np.savez(path, x=x, y=np.zeros(len(x), np.int64))
    return path


def _with_nonfinite(value: float) -> np.ndarray:
    x = np.zeros((4, 1, 8, 8), np.float32)
    x[2, 0, 3, 3] = value
    return x


BAD_DATA = {
    "shape": (lambda: np.zeros((4, 1, 9, 9), np.float32), ["has shape [N,1,9,9]", "expects [1,1,8,8]"]),
    "layout": (lambda: np.zeros((4, 8, 8, 1), np.float32), ["data is NHWC", "preprocess.layout: NCHW"]),
    "nan": (lambda: _with_nonfinite(np.nan), ["sample 2", "contains NaN"]),
    "inf": (lambda: _with_nonfinite(np.inf), ["sample 2", "contains Inf"]),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_data_that_does_not_fit(capsys, compile_args, conv_onnx: Path, tmp_path: Path, case: str) -> None:
    make, fragments = BAD_DATA[case]
    data = _npz(tmp_path / f"{case}.npz", make())
    rc, _, err = _run(capsys, *compile_args(conv_onnx, "--data", str(data)))
    _assert_user_error(rc, err, *fragments)
    assert _no_outputs(tmp_path / "out")


def test_data_of_the_wrong_dtype(capsys, compile_args, tmp_path: Path) -> None:
    model = _int_input_model(tmp_path / "ids.onnx")
    data = _npz(tmp_path / "floats.npz", np.zeros((3, 4), np.float32))
    rc, _, err = _run(capsys, *compile_args(model, "--data", str(data)))
    _assert_user_error(rc, err, "is float32 but the model expects int64")
    assert _no_outputs(tmp_path / "out")


def test_empty_data_folder(capsys, compile_args, conv_onnx: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    rc, _, err = _run(capsys, *compile_args(conv_onnx, "--data", str(tmp_path / "empty")))
    _assert_user_error(rc, err, "no images found")
    assert _no_outputs(tmp_path / "out")


def test_model_files_that_are_not_models(capsys, compile_args, conv_onnx: Path, tmp_path: Path) -> None:
    data = conv_onnx.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "text.onnx"
    text.write_text("name: not really an onnx model\n")
    cases = [(truncated, [str(truncated), "is not a valid ONNX"]), (text, [str(text), "is not a valid ONNX"]),
             (tmp_path / "missing.onnx", [str(tmp_path / "missing.onnx"), "does not exist"]),
             (_escaping_model(tmp_path), ["'../secret.bin' outside the model's folder"])]
    for model, fragments in cases:
        rc, _, err = _run(capsys, *compile_args(model))
        _assert_user_error(rc, err, *fragments)
        assert _no_outputs(tmp_path / "out")


def test_unknown_target_suggests_the_closest(capsys, compile_args, conv_onnx: Path, tmp_path: Path) -> None:
    rc, _, err = _run(capsys, *compile_args(conv_onnx, "--target", "ort-cpuu"))
    _assert_user_error(rc, err, "unknown target 'ort-cpuu'", "did you mean 'ort-cpu'?")
    assert _no_outputs(tmp_path / "out")


def test_output_folder_that_cannot_be_written(capsys, conv_onnx: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for out in (blocker / "out", blocker):
        rc, _, err = _run(capsys, "compile", str(conv_onnx), "--out", str(out), "--quiet", "--cache-dir",
                          str(tmp_path / "cache"))
        _assert_user_error(rc, err, str(out), "--out")
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("kind", ["pt2", "pt"])
def test_pickled_objects_are_refused(capsys, compile_args, tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "called"
    model = tmp_path / f"model.{kind}"
    if kind == "pt2":
        with zipfile.ZipFile(model, "w") as zf:
            zf.writestr("model/data.pkl", pickle.dumps(Trap(marker), protocol=2))
    else:
        model.write_bytes(pickle.dumps(Trap(marker), protocol=2))
    rc, _, err = _run(capsys, *compile_args(model))
    _assert_user_error(rc, err, "arbitrary pickled objects")
    assert not marker.exists()  # the pickle never ran
    assert _no_outputs(tmp_path / "out")


def test_broken_config_yaml(capsys, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model: [unclosed\n")
    rc, _, err = _run(capsys, "compile", "--config", str(cfg))
    _assert_user_error(rc, err, "not valid YAML")
    rc, _, err = _run(capsys, "compile", "--config", str(tmp_path / "nope.yaml"))
    _assert_user_error(rc, err, "does not exist")

