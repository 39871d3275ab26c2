"""Columns: one model input's samples, fetched and preprocessed a batch at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from edgeopt.data.preprocess import (
    Preprocess,
    SourceLayout,
    detect_layout,
    output_layout,
    preprocess_images,
    preprocess_plain,
    resize_and_crop,
)
from edgeopt.data.readers import decode_image
from edgeopt.errors import DataError


class Column(Protocol):
    """Samples of one input: length, output layout, and preprocessed rows for given source indices."""

    def __len__(self) -> int: ...

    @property
    def layout(self) -> str | None: ...

    def fetch(self, indices: np.ndarray) -> np.ndarray: ...


class ArrayColumn:
    """An in-memory array (from .npz, idx or a dict); rows are preprocessed when fetched."""

    def __init__(self, array: np.ndarray, pp: Preprocess) -> None:
        self._array = array
        self._pp = pp
        self._source_layout: SourceLayout | None = detect_layout(array, pp.source_layout)
        if self._source_layout is not None and array.ndim != (3 if self._source_layout == "HW" else 4):
            raise DataError(
                f"data array of shape {list(array.shape)} cannot have source_layout {self._source_layout}",
                "set preprocess.source_layout to match the array (NCHW, NHWC, HW or none)",
            )

    def __len__(self) -> int:
        return int(self._array.shape[0]) if self._array.ndim else 0

    @property
    def layout(self) -> str | None:
        """Layout of the fetched rows (None for non-image data)."""
        return output_layout(self._source_layout, self._pp)

    @property
    def source_layout(self) -> str | None:
        """Layout of the stored array (None for non-image data)."""
        return self._source_layout

    def fetch(self, indices: np.ndarray) -> np.ndarray:
        """Preprocessed rows at the given source indices."""
        rows = self._array[indices]
        if self._source_layout is None:
            return preprocess_plain(rows, self._pp)
        return preprocess_images(rows, self._source_layout, self._pp)


class ImageFileColumn:
    """Image files decoded on demand: only the current batch is ever held in memory."""

    def __init__(self, paths: list[Path], pp: Preprocess) -> None:
        self._paths = tuple(paths)
        self._pp = pp

    def __len__(self) -> int:
        return len(self._paths)

    @property
    def layout(self) -> str | None:
        """Layout of the fetched rows."""
        return output_layout("NHWC", self._pp)

    def path(self, index: int) -> Path:
        """The file behind a source index."""
        return self._paths[index]

    def fetch(self, indices: np.ndarray) -> np.ndarray:
        """Decode, resize/crop, stack, then normalise the images at the given source indices."""
        samples = [resize_and_crop(decode_image(self._paths[i], self._pp.image_mode()), self._pp) for i in indices]
        if not samples:
            return np.zeros((0, 0, 0, 3), dtype=np.uint8)
        first = samples[0].shape
        for i, sample in zip(indices, samples, strict=True):
            if sample.shape != first:
                raise DataError(
                    f"images differ in size after preprocessing: {self._paths[indices[0]]} is "
                    f"{first[0]}x{first[1]}, {self._paths[i]} is {sample.shape[0]}x{sample.shape[1]}",
                    "set preprocess.resize and/or preprocess.center_crop so that all images get one size",
                )
        # Geometry is done; the remaining steps (scale, mean/std, layout, dtype) run on the whole batch.
        geometry_done = self._pp.model_copy(update={"resize": None, "center_crop": None, "channels": None})
        return preprocess_images(np.stack(samples), "NHWC", geometry_done)
