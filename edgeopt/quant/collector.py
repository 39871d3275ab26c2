"""Phase two of calibration: one streaming pass over the data that reduces every requested tensor batch by batch.

The tensors are exposed by adding them as outputs of a copy of the model run in ONNX Runtime. Only one batch of
activations is alive at a time, so peak memory does not grow with the number of calibration samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from edgeopt.artifacts.base import TensorSpec
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.data.validation import check_dtype, check_finite, check_shape
from edgeopt.errors import DataError
from edgeopt.quant.graph import with_outputs
from edgeopt.quant.session import fixed_batch, ort_session, run
from edgeopt.quant.statistics import NUM_BINS, TensorStats

DEFAULT_BATCH = 8


@dataclass
class CollectionResult:
    """Statistics per tensor and the number of samples they cover."""

    stats: dict[str, TensorStats]
    samples: int


def model_input_specs(model: onnx.ModelProto) -> list[TensorSpec]:
    """The model's real inputs as TensorSpecs."""
    return OnnxModel(path=None, sha256="", _proto=model).input_specs()


def bind_to(model: onnx.ModelProto, data: Any) -> Any:
    """`data` with the model's input names and dtypes (a DataError when it cannot feed the model)."""
    return data.bind(model_input_specs(model)) if hasattr(data, "bind") else data


def select_samples(data: Any, samples: int | None, what: str = "calibration") -> Any:
    """The first `samples` of `data`; a DataError when there are fewer (or none)."""
    n = len(data)
    if n == 0:
        raise DataError(f"the {what} set has no samples", f"point --{what} at data with samples")
    if samples is not None and n < samples:
        raise DataError(
            f"the {what} set has {n} samples but {samples} were asked for",
            f"lower --{what}-samples to {n} or use a larger {what} split",
        )
    return data.subset(0, samples) if samples is not None and samples < n else data


def check_batch(inputs: dict[str, np.ndarray], specs: list[TensorSpec], data: Any, start: int) -> None:
    """Raise DataError when a batch does not fit the model (names, shape/layout, dtype, NaN/Inf)."""
    missing = [s.name for s in specs if s.name not in inputs]
    if missing:
        raise DataError(
            f"calibration data has inputs {sorted(inputs)} but the model needs {[s.name for s in specs]}",
            "name the data arrays after the model inputs (or set input_name in the recipe)",
        )
    layouts = getattr(data, "layouts", {}) or {}
    for spec in specs:
        array = inputs[spec.name]
        check_shape(array, spec, layouts.get(spec.name))
        check_dtype(array, spec)
        positions = np.arange(start, start + len(array))
        indices = data.source_indices[positions] if hasattr(data, "source_indices") else positions
        check_finite(array, spec.name, positions, indices)


def collect_statistics(
    model: onnx.ModelProto,
    data: Any,
    tensors: list[str],
    *,
    samples: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    threads: int | None = None,
    num_bins: int = NUM_BINS,
    on_batch: Callable[[int, int], None] | None = None,
) -> CollectionResult:
    """Run `model` once over (the first `samples` of) `data`, reducing each of `tensors` to TensorStats."""
    data = select_samples(bind_to(model, data), samples)
    specs = model_input_specs(model)
    session = ort_session(with_outputs(model, tensors), threads, level="basic")
    known = {o.name for o in session.get_outputs()}
    absent = [t for t in tensors if t not in known]
    if absent:
        raise ValueError(f"tensors not in the model: {absent[:5]}")
    max_batch = fixed_batch(session)
    stats = {t: TensorStats(num_bins=num_bins) for t in tensors}
    seen = 0
    for batch in data.batches(min(batch_size, max_batch or batch_size)):
        check_batch(batch.inputs, specs, data, seen)
        values = run(session, batch.inputs, tensors, max_batch)
        for name, value in zip(tensors, values, strict=True):
            try:
                stats[name].update(value)
            except ValueError as exc:
                raise DataError(
                    f"tensor '{name}' becomes NaN or Inf on calibration samples {seen}..{seen + len(value) - 1}",
                    "check that the calibration preprocessing (scale, mean, std) matches what the model expects",
                ) from exc
        seen += len(next(iter(batch.inputs.values())))
        if on_batch is not None:
            on_batch(seen, len(data))
    return CollectionResult(stats, seen)
