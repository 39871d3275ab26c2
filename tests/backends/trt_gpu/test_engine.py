"""Engine files and build plans: manifest checks against the machine (real files, no TensorRT needed), precision
and profile resolution, the trtexec command; and, on a GPU with TensorRT, a real build and run."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from edgeopt.artifacts.base import TensorSpec
from edgeopt.backends.tensorrt.artifact import (
    EngineHost,
    EngineManifest,
    EngineMismatchError,
    TrtEngine,
    check_compatible,
    manifest_path,
)
from edgeopt.backends.tensorrt.backend import TensorrtBackend
from edgeopt.backends.tensorrt.build import BuildPlan, profile_shapes, resolve_precision, trtexec_command
from edgeopt.errors import ConfigError, EdgeoptError, ModelFileError
from edgeopt.fileio import sha256_file


def _fake_engine(tmp_path: Path, trt: str = "10.3.0", gpu: str = "NVIDIA A100-SXM4-40GB", cc: str = "8.0") -> Path:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not really an engine")
    EngineManifest(tensorrt=trt, gpu=gpu, compute_capability=cc, engine_sha256=sha256_file(engine),
                   precision="int8+fp16").write(manifest_path(engine))
    return engine


def test_engine_from_another_machine_is_refused(tmp_path: Path) -> None:
    engine = TrtEngine.from_file(_fake_engine(tmp_path))
    assert engine.manifest is not None and engine.manifest.gpu == "NVIDIA A100-SXM4-40GB"
    here = EngineHost.current()
    if here == engine.manifest.host:  # pragma: no cover - only on that exact machine
        pytest.skip("this machine matches the fake manifest")
    with pytest.raises(EngineMismatchError) as info:
        TensorrtBackend().load(engine)
    msg = str(info.value)
    assert "TensorRT 10.3.0 on NVIDIA A100-SXM4-40GB (compute capability 8.0)" in msg
    assert here.describe() in msg and "rebuild" in msg


def test_compatibility_names_gpu_and_version() -> None:
    m = EngineManifest(tensorrt="10.3.0", gpu="NVIDIA A100", compute_capability="8.0", engine_sha256="x")
    assert check_compatible(m, EngineHost("10.3.0", "NVIDIA A100", "8.0")) is None
    gpu = check_compatible(m, EngineHost("10.3.0", "NVIDIA H100 80GB HBM3", "9.0"))
    assert gpu is not None and "different GPU" in gpu and "H100" in gpu
    ver = check_compatible(m, EngineHost("10.8.0", "NVIDIA A100", "8.0"))
    assert ver is not None and "different TensorRT version" in ver and "10.8.0" in ver


def test_stale_manifest_is_refused(tmp_path: Path) -> None:
    engine = _fake_engine(tmp_path)
    engine.write_bytes(b"another engine")
    with pytest.raises(ModelFileError, match="describes another file"):
        TrtEngine.from_file(engine)


def test_damaged_manifest_is_refused(tmp_path: Path) -> None:
    engine = _fake_engine(tmp_path)
    manifest_path(engine).write_text(json.dumps({"schema": "something else"}))
    with pytest.raises(ModelFileError, match="unreadable"):
        TrtEngine.from_file(engine)


def test_precision_resolution() -> None:
    assert resolve_precision(None, quantized=True) == (True, True)
    assert resolve_precision(None, quantized=False) == (False, True)
    assert resolve_precision("int8", quantized=True) == (True, False)
    with pytest.raises(ConfigError, match="needs a model with Q/DQ"):
        resolve_precision("int8", quantized=False)
    with pytest.raises(ConfigError, match="cannot build a model that carries Q/DQ"):
        resolve_precision("fp16", quantized=True)


def test_profiles_and_command() -> None:
    specs = [TensorSpec("images", ("N", 3, "h", 224)), TensorSpec("scale", (1,))]
    profiles = profile_shapes(specs, (1, 4, 16), {"h": (112, 224, 448)})
    assert profiles == {"images": ((1, 3, 112, 224), (4, 3, 224, 224), (16, 3, 448, 224))}
    cmd = trtexec_command("a/m.onnx", "a/m.engine", BuildPlan(True, True, 512, profiles), "a/t.cache")
    args = shlex.split(cmd)
    assert args[:3] == ["trtexec", "--onnx=a/m.onnx", "--saveEngine=a/m.engine"]
    assert {"--int8", "--fp16", "--memPoolSize=workspace:512M", "--minShapes=images:1x3x112x224",
            "--optShapes=images:4x3x224x224", "--maxShapes=images:16x3x448x224", "--timingCacheFile=a/t.cache"} \
        <= set(args)
    with pytest.raises(ConfigError, match="dynamic dimension 2 'h'"):
        profile_shapes(specs, (1, 4, 16), {})


def test_bad_options_are_named() -> None:
    with pytest.raises(EdgeoptError, match="batch"):
        TensorrtBackend({"batch": [8, 1, 4]})
    with pytest.raises(EdgeoptError, match="workspace"):
        TensorrtBackend({"workspace": 10})


@pytest.mark.gpu
def test_engine_builds_and_matches_ort(residual_onnx: Path, tmp_path: Path) -> None:
    why = TensorrtBackend.availability()
    if why is not None:
        pytest.skip(f"needs TensorRT and an NVIDIA GPU: {why}")
    from edgeopt.artifacts.onnx_model import OnnxModel

    backend = TensorrtBackend({"batch": [1, 4, 8]})
    model = OnnxModel.from_file(residual_onnx)
    engine = backend.build(model, backend.plan(model), tmp_path / "residual.engine")
    assert engine.manifest is not None and engine.manifest.host == EngineHost.current()
    runner = backend.load(engine)
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    import onnxruntime as ort

    ref = ort.InferenceSession(str(residual_onnx), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = runner.run({"x": x})[0]
    assert np.allclose(ref, got, atol=5e-2, rtol=5e-2)  # FP16 engine
    assert len(runner.time_ms({"x": x}, iters=5, warmup=1)) == 5
    from edgeopt.evaluate.latency import SelfTimed

    call = runner.latency_call({"x": x})  # what the compile's interleaved timing records for an engine
    assert isinstance(call, SelfTimed) and call.clock == "cuda-events" and call.fn() > 0
    assert np.allclose(runner.run({"x": x})[0], got)  # timing left the engine's bindings usable


def test_only_tensorrt_10_builds() -> None:
    """TensorRT 11 dropped the FP16/INT8 builder flags the engine build sets: refused by name, with the pin to use."""
    from edgeopt.backends.tensorrt.trt_import import unsupported_version

    assert unsupported_version("10.3.0") is None and unsupported_version("10.13.0.35") is None
    newer = unsupported_version("11.4.0.106")
    assert newer is not None and "11.4.0.106" in newer and "strongly typed" in newer and "tensorrt>=10,<11" in newer
    older = unsupported_version("8.6.1")
    assert older is not None and "8.6.1" in older and "strongly typed" not in older and "tensorrt>=10,<11" in older
