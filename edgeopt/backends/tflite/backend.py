"""LiteRT (TFLite) backend: run .tflite files with the LiteRT interpreter (XNNPACK), and report ONNX op coverage."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeopt.artifacts.base import Artifact, ArtifactKind, TensorSpec
from edgeopt.backends.base import Backend, BackendOptions, Runner, register_backend
from edgeopt.backends.tflite.artifact import TfliteModel
from edgeopt.errors import BackendUnavailable


def _litert() -> Any:
    try:
        from ai_edge_litert import interpreter
    except ImportError as exc:
        raise BackendUnavailable("ai-edge-litert", "tflite") from exc
    return interpreter


class TfliteOptions(BackendOptions):
    """LiteRT interpreter settings edgeopt exposes (None: LiteRT's default thread count)."""

    num_threads: int | None = None


class TfliteRunner(Runner):
    """A LiteRT interpreter. Takes and returns tensors in the ONNX layout and dtype the model was converted from:
    NHWC model I/O is transposed and int8 model I/O (de)quantized here."""

    max_batch: int | None = None

    def __init__(self, model: TfliteModel, threads: int | None) -> None:
        interpreter = _litert()
        self.threads = threads
        kwargs: dict[str, Any] = {"model_path": str(model.path)}
        if threads:
            kwargs["num_threads"] = threads
        self.interpreter = interpreter.Interpreter(**kwargs)
        self.interpreter.allocate_tensors()
        meta = model.metadata
        perms = {io["name"]: tuple(io["perm"]) for io in meta.get("inputs", []) + meta.get("outputs", [])}
        self._in = self.interpreter.get_input_details()
        self._out = self.interpreter.get_output_details()
        self._perm = {d["name"]: perms.get(d["name"], tuple(range(len(d["shape"])))) for d in self._in + self._out}
        self._specs = []
        for d in self._in:
            perm = self._perm[d["name"]]
            shape = [0] * len(perm)
            for i, p in enumerate(perm):
                shape[p] = int(d["shape"][i])
            dtype = "float32" if _is_quantized(d) else np.dtype(d["dtype"]).name
            self._specs.append(TensorSpec(d["name"], tuple(shape), dtype))
        first = self._specs[0].shape[0] if self._specs and self._specs[0].shape else None
        self.max_batch = first if isinstance(first, int) else None

    def input_specs(self) -> list[TensorSpec]:
        return list(self._specs)

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        for d, spec in zip(self._in, self._specs, strict=True):
            x = np.asarray(inputs[spec.name])
            x = np.transpose(x, self._perm[d["name"]]) if x.ndim == len(self._perm[d["name"]]) else x
            if _is_quantized(d):
                scale, zp = d["quantization"]
                info = np.iinfo(d["dtype"])
                x = np.clip(np.rint(x.astype(np.float32) / scale) + zp, info.min, info.max)
            self.interpreter.set_tensor(d["index"], np.require(x, dtype=d["dtype"], requirements="C"))
        self.interpreter.invoke()
        outs = []
        for d in self._out:
            y = self.interpreter.get_tensor(d["index"])
            if _is_quantized(d):
                scale, zp = d["quantization"]
                y = ((y.astype(np.float32) - zp) * scale).astype(np.float32)
            outs.append(np.transpose(y, np.argsort(self._perm[d["name"]])) if y.ndim > 1 else y)
        return outs

    def describe(self) -> dict[str, Any]:
        import ai_edge_litert

        return {"runtime": "litert", "version": getattr(ai_edge_litert, "__version__", "unknown"),
                "threads": self.threads, "delegate": "xnnpack (default)"}


def _is_quantized(detail: dict[str, Any]) -> bool:
    return np.dtype(detail["dtype"]).kind in "iu" and detail["quantization"][0] != 0.0


@register_backend
class TfliteBackend(Backend):
    """LiteRT on the CPU (standing in for a phone CPU), XNNPACK delegate by default."""

    name = "tflite"
    artifact_kind = ArtifactKind.TFLITE
    Options = TfliteOptions
    extra = "tflite"

    @classmethod
    def availability(cls) -> str | None:
        try:
            _litert()
        except BackendUnavailable as exc:
            return str(exc)
        return None

    def load(self, artifact: Artifact, threads: int | None = None) -> Runner:
        if not isinstance(artifact, TfliteModel) or artifact.path is None:
            raise TypeError("the tflite backend runs .tflite files")
        assert isinstance(self.options, TfliteOptions)
        return TfliteRunner(artifact, threads or self.options.num_threads)

    def check(self, inputs: list[TensorSpec]) -> list[str]:
        """TFLite needs static shapes: every dim but the batch must be known before conversion."""
        from edgeopt.backends.tflite.graph import dynamic_dim_error

        errors = (dynamic_dim_error(spec.name, spec.shape) for spec in inputs)
        return [str(e) for e in errors if e is not None]

    def inspect(self, artifact: Artifact) -> dict[str, Any]:
        """ONNX op coverage of the lowering for an ONNX model (supported ops, unsupported ops with node names)."""
        from edgeopt.artifacts.onnx_model import OnnxModel
        from edgeopt.backends.tflite.converter import coverage

        if isinstance(artifact, OnnxModel):
            return coverage(artifact.proto)
        if isinstance(artifact, TfliteModel):
            return {"note": "already a TFLite model", "ops": artifact.op_histogram()}
        return {"note": f"export the {artifact.kind.value} model to ONNX to check TFLite coverage"}
