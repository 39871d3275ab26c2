"""Checks that data fits a model input: shape (with a layout diagnosis), dtype and finite values."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeopt.artifacts.base import TensorSpec
from edgeopt.errors import DataError

Dim = int | str | None


def is_dynamic(dim: Dim) -> bool:
    """True for a dim the model leaves open (symbolic name, None, or a non-positive int)."""
    return not (isinstance(dim, int) and dim > 0)


def format_shape(dims: Sequence[Dim]) -> str:
    """A shape as `[1,3,224,224]`; dynamic dims show their name or `?`."""
    return "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"


def _fits(sample: Sequence[int], expected: Sequence[Dim]) -> bool:
    """True when a sample shape matches the expected per-sample dims (dynamic dims match anything)."""
    return len(sample) == len(expected) and all(is_dynamic(e) or e == s for s, e in zip(sample, expected, strict=True))


def _layout_fix(sample: tuple[int, ...], expected: tuple[Dim, ...]) -> tuple[str, str] | None:
    """(model layout, data layout) when the data would fit after a layout change, else None."""
    if len(sample) == 3 and len(expected) == 3:
        h, w, c = sample
        if _fits((c, h, w), expected):
            return "NCHW", "NHWC"
        c, h, w = sample
        if _fits((h, w, c), expected):
            return "NHWC", "NCHW"
    if len(sample) == 2 and len(expected) == 3:
        if _fits((1, *sample), expected):
            return "NCHW", "HW"
        if _fits((*sample, 1), expected):
            return "NHWC", "HW"
    return None


def check_shape(batch: np.ndarray, spec: TensorSpec, layout: str | None) -> None:
    """Raise DataError unless each sample of `batch` fits `spec` (dim 0 is the free batch dim)."""
    sample = tuple(int(d) for d in batch.shape[1:])
    expected = tuple(spec.shape[1:])
    if _fits(sample, expected):
        return
    data = f"[N,{','.join(str(d) for d in sample)}]"
    model = format_shape(spec.shape)
    fix = _layout_fix(sample, expected)
    if fix is not None:
        want, have = fix
        have = layout if layout in ("NCHW", "NHWC") else have
        raise DataError(
            f"data is {have} {data} but input '{spec.name}' expects {want} {model}",
            f"set preprocess.layout: {want} in the recipe",
        )
    raise DataError(
        f"data for input '{spec.name}' has shape {data} but the model expects {model}",
        "set preprocess.resize / center_crop / layout / channels in the recipe so that samples match",
    )


def check_dtype(batch: np.ndarray, spec: TensorSpec) -> None:
    """Raise DataError when the data cannot be cast to the input's dtype without changing its kind."""
    target = np.dtype(spec.dtype)
    if not np.can_cast(batch.dtype, target, casting="same_kind"):
        raise DataError(
            f"data for input '{spec.name}' is {batch.dtype} but the model expects {target}",
            f"set preprocess.dtype: {target} in the recipe, or store {target} arrays",
        )


def check_finite(batch: np.ndarray, name: str, positions: np.ndarray, source_indices: np.ndarray) -> None:
    """Raise DataError naming the first sample that holds NaN or Inf."""
    if batch.dtype.kind not in "fc":
        return
    finite = np.isfinite(batch.reshape(batch.shape[0], -1)).all(axis=1)
    if finite.all():
        return
    bad = int(np.argmin(finite))
    kind = "NaN" if np.isnan(batch[bad]).any() else "Inf"
    raise DataError(
        f"sample {int(positions[bad])} (source index {int(source_indices[bad])}) of input '{name}' contains {kind}",
        "fix or drop that sample (e.g. with split), or check the preprocessing (std 0?)",
    )


def check_count(n: int, source: str, min_samples: int | None) -> None:
    """Raise DataError for an empty source or one with fewer than `min_samples` samples."""
    if n == 0:
        raise DataError(f"data source {source} has no samples", "check the source and the split/limit of the recipe")
    if min_samples is not None and n < min_samples:
        raise DataError(
            f"data source {source} has {n} samples but at least {min_samples} are needed",
            "use a larger split or limit, or a bigger data set",
        )
