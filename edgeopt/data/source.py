"""DataSource: a selected, ordered, preprocessed view of a data set, streamed in batches."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from edgeopt.artifacts.base import TensorSpec
from edgeopt.data.columns import Column
from edgeopt.data.validation import check_count, check_dtype, check_finite, check_shape
from edgeopt.errors import DataError

VALIDATION_BATCH = 64


class Batch(NamedTuple):
    """Model inputs by name and the matching labels (None for unlabeled data)."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None


class DataSource:
    """Samples of one or more inputs (plus optional labels) in a fixed order; never loads more than a batch of files."""

    def __init__(
        self,
        columns: dict[str, Column],
        labels: np.ndarray | None,
        order: np.ndarray,
        info: dict[str, Any],
        *,
        named: bool,
        classes: list[str] | None = None,
    ) -> None:
        self._columns = dict(columns)
        self._labels = labels
        self._order = np.asarray(order, dtype=np.int64)
        self._info = dict(info)
        self._named = named
        self._dtypes: dict[str, str] = {}
        self.classes = classes

    def __len__(self) -> int:
        return int(self._order.shape[0])

    def __repr__(self) -> str:
        return f"DataSource({self._info.get('source')!r}, n={len(self)}, inputs={self.input_names})"

    @property
    def has_labels(self) -> bool:
        """True when every sample has a label."""
        return self._labels is not None

    @property
    def labels(self) -> np.ndarray | None:
        """All labels in this view's order, without decoding any input (None for unlabeled data)."""
        return self._labels[self._order] if self._labels is not None else None

    @property
    def input_names(self) -> list[str]:
        """Names of the inputs the batches hold (model input names once bound)."""
        return list(self._columns)

    @property
    def layouts(self) -> dict[str, str | None]:
        """Layout of each input's batches (NCHW, NHWC, HW, or None for non-image data)."""
        return {name: col.layout for name, col in self._columns.items()}

    @property
    def source_indices(self) -> np.ndarray:
        """Indices into the underlying source, in this view's order."""
        return self._order.copy()

    def _replace(self, **changes: Any) -> DataSource:
        """A shallow copy with some attributes changed (columns are shared: they are read-only)."""
        new = copy.copy(self)
        for key, value in changes.items():
            setattr(new, key, value)
        return new

    def _fetch(self, positions: np.ndarray, cast: bool = True) -> Batch:
        """The batch at the given positions of this view's order."""
        indices = self._order[positions]
        inputs: dict[str, np.ndarray] = {}
        for name, column in self._columns.items():
            array = column.fetch(indices)
            target = self._dtypes.get(name)
            castable = target is not None and np.can_cast(array.dtype, target, casting="same_kind")
            if cast and castable and array.dtype != target:
                array = array.astype(target)
            inputs[name] = array
        labels = self._labels[indices] if self._labels is not None else None
        return Batch(inputs, labels)

    def _positions(self, batch_size: int) -> Iterator[np.ndarray]:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise DataError(f"batch size must be a positive integer, got {batch_size!r}", "pass batch_size >= 1")
        for start in range(0, len(self), batch_size):
            yield np.arange(start, min(start + batch_size, len(self)))

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Stream the samples in order, `batch_size` at a time (the last batch may be smaller)."""
        for positions in self._positions(batch_size):
            yield self._fetch(positions)

    def take(self, n: int) -> Batch:
        """The first `n` samples (at most all of them) as one batch."""
        return self._fetch(np.arange(min(max(n, 0), len(self))))

    def subset(self, start: int | None = None, stop: int | None = None) -> DataSource:
        """A new source over positions start:stop of this one (Python slice rules, negatives allowed)."""
        subsets = [*self._info.get("subset", []), [start, stop]]
        return self._replace(_order=self._order[start:stop], _info={**self._info, "subset": subsets})

    def bind(self, model_inputs: list[TensorSpec]) -> DataSource:
        """A new source whose inputs carry the model's input names and are cast to the model's dtypes."""
        model_names = [spec.name for spec in model_inputs]
        dtypes = {spec.name: spec.dtype for spec in model_inputs}
        if not self._named:
            (column,) = self._columns.values()
            explicit = self._info.get("input_name")
            target = explicit or (model_names[0] if len(model_names) == 1 else None)
            if target is None or target not in model_names:
                why = f"input_name '{explicit}' is not a model input" if explicit else "the data holds one input array"
                raise DataError(
                    f"{why} but the model has inputs {model_names}",
                    "set input_name in the recipe to the model input the data feeds",
                )
            missing = [name for name in model_names if name != target]
            if missing:
                raise DataError(
                    f"the data feeds only input '{target}' but the model also needs {missing}",
                    "use an .npz file with one array per model input name",
                )
            columns = {target: column}
        else:
            data_names = sorted(self._columns)
            if data_names != sorted(model_names):
                raise DataError(
                    f"data arrays {data_names} do not match the model inputs {sorted(model_names)}",
                    "name the arrays in the .npz after the model inputs",
                )
            columns = {name: self._columns[name] for name in model_names}
        return self._replace(_columns=columns, _named=True, _dtypes=dtypes)

    def validate(self, model_inputs: list[TensorSpec], min_samples: int | None = None) -> DataSource:
        """Stream every sample once and raise DataError on the first misfit; return the bound source."""
        bound = self.bind(model_inputs)
        check_count(len(bound), str(self._info.get("source")), min_samples)
        specs = {spec.name: spec for spec in model_inputs}
        layouts = bound.layouts
        for positions in bound._positions(VALIDATION_BATCH):
            batch = bound._fetch(positions, cast=False)
            for name, array in batch.inputs.items():
                check_shape(array, specs[name], layouts[name])
                check_dtype(array, specs[name])
                check_finite(array, name, positions, bound._order[positions])
        return bound

    def describe(self) -> dict[str, Any]:
        """What the data is and how it was selected and preprocessed, as JSON-ready values (for manifests)."""
        out = {key: value for key, value in self._info.items() if key != "input_name"}
        out.update(
            n=len(self),
            inputs=self.input_names,
            layouts=self.layouts,
            has_labels=self.has_labels,
            num_classes=len(self.classes) if self.classes is not None else None,
        )
        return out
