"""load_data: open an .npz file, MNIST idx folder, image folder, recipe or dict of arrays as a DataSource."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.artifacts.base import TensorSpec
from edgeopt.data.columns import ArrayColumn, Column, ImageFileColumn
from edgeopt.data.preprocess import Preprocess
from edgeopt.data.readers import (
    IDX_IMAGES,
    find_idx_pair,
    list_image_folder,
    read_class_names,
    read_idx,
    read_npz,
    require_exists,
)
from edgeopt.data.recipe import Recipe
from edgeopt.data.source import DataSource
from edgeopt.errors import DataError

INPUT_KEYS = ("x", "images", "inputs")
LABEL_KEYS = ("y", "labels")
RECIPE_SUFFIXES = (".yaml", ".yml")
DataSpec = str | os.PathLike[str] | Recipe | Mapping[str, Any]


def load_data(spec: DataSpec, model_inputs: list[TensorSpec] | None = None) -> DataSource:
    """Open data for a model: a path (.npz, idx folder, image folder, recipe .yaml), a Recipe or a dict of arrays.

    With `model_inputs`, the source is bound to the model's input names and dtypes (see DataSource.bind).
    """
    if isinstance(spec, Recipe):
        recipe = spec
    elif isinstance(spec, Mapping):
        if spec and all(isinstance(v, np.ndarray) for v in spec.values()):
            source = _from_arrays(dict(spec), Recipe(source="<arrays>"), "arrays", model_inputs)
            return source.bind(model_inputs) if model_inputs is not None else source
        recipe = Recipe.from_dict(spec)
    elif isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if path.suffix.lower() in RECIPE_SUFFIXES:
            recipe = Recipe.from_yaml(path)
        else:
            recipe = Recipe(source=os.path.normpath(path.expanduser().absolute()))
    else:
        raise DataError(
            f"cannot load data from an object of type {type(spec).__name__}",
            "pass a path, a Recipe or a dict of numpy arrays",
        )
    source = open_recipe(recipe, model_inputs)
    return source.bind(model_inputs) if model_inputs is not None else source


def detect_format(path: Path) -> str:
    """npz, mnist or imagefolder, from what is at `path`."""
    require_exists(path, "data path")
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return "npz"
        if IDX_IMAGES in path.name:
            return "mnist"
        raise DataError(
            f"cannot tell the data format of {path}",
            "use an .npz file, an idx images file, a folder, or set format in a recipe",
        )
    if any(IDX_IMAGES in p.name for p in path.iterdir()):
        return "mnist"
    return "imagefolder"


def open_recipe(recipe: Recipe, model_inputs: list[TensorSpec] | None = None) -> DataSource:
    """Read the recipe's source and apply its split, shuffle and limit."""
    path = Path(recipe.source)
    fmt = detect_format(path) if recipe.format == "auto" else recipe.format
    classes = read_class_names(Path(recipe.classes_from)) if recipe.classes_from else None
    if fmt == "npz":
        require_exists(path, "data file")
        if not path.is_file():
            raise DataError(f"{path} is not an .npz file", "point source at an .npz file, or set format")
        return _from_arrays(read_npz(path), recipe, fmt, model_inputs, classes)
    if fmt == "mnist":
        images_path, labels_path = find_idx_pair(path)
        arrays = {"x": read_idx(images_path)}
        if labels_path is not None:
            arrays["y"] = read_idx(labels_path).astype(np.int64)
        return _from_arrays(arrays, recipe, fmt, None, classes)
    paths, labels, names = list_image_folder(path, classes)
    column = ImageFileColumn(paths, recipe.preprocess)
    return _select({"input": column}, labels, recipe, fmt, named=False, classes=names)


def _from_arrays(
    arrays: dict[str, np.ndarray],
    recipe: Recipe,
    fmt: str,
    model_inputs: list[TensorSpec] | None,
    classes: list[str] | None = None,
) -> DataSource:
    """A source over in-memory arrays: one unnamed input array, or one array per model input name."""
    label_key = next((k for k in LABEL_KEYS if k in arrays), None)
    labels = arrays[label_key] if label_key is not None else None
    candidates = {k: v for k, v in arrays.items() if k != label_key}
    model_names = [spec.name for spec in model_inputs or []]
    input_key = next((k for k in INPUT_KEYS if k in candidates), None)
    named = bool(model_names) and all(name in candidates for name in model_names)
    if not named and input_key is None and len(candidates) == 1:
        input_key = next(iter(candidates))
    if named:
        chosen = {name: candidates[name] for name in model_names}
    elif input_key is not None:
        chosen = {"input": candidates[input_key]}
    elif candidates:
        chosen, named = dict(sorted(candidates.items())), True
    else:
        raise DataError(
            f"{recipe.source} holds no input arrays (found {sorted(arrays)})",
            f"store the inputs as {' / '.join(INPUT_KEYS)} or one array per model input name",
        )
    lengths = {name: (a.shape[0] if a.ndim else 0) for name, a in chosen.items()}
    if labels is not None:
        lengths[label_key or "labels"] = labels.shape[0] if labels.ndim else 0
    if len(set(lengths.values())) > 1:
        raise DataError(
            f"arrays in {recipe.source} have different lengths {lengths}",
            "store the same number of samples in every array",
        )
    columns: dict[str, Column] = {name: ArrayColumn(np.asarray(a), recipe.preprocess) for name, a in chosen.items()}
    return _select(columns, labels, recipe, fmt, named=named, classes=classes)


def _select(
    columns: dict[str, Column],
    labels: np.ndarray | None,
    recipe: Recipe,
    fmt: str,
    *,
    named: bool,
    classes: list[str] | None,
) -> DataSource:
    """Apply split (over the source order), then shuffle (seeded), then limit."""
    n = len(next(iter(columns.values())))
    everything = np.arange(n, dtype=np.int64)
    splits = recipe.splits()
    order = np.concatenate([everything[s.as_slice()] for s in splits]) if splits else everything
    if recipe.shuffle:
        order = np.random.default_rng(recipe.seed).permutation(order)
    if recipe.limit is not None:
        order = order[: recipe.limit]
    if not named and recipe.input_name:
        columns = {recipe.input_name: next(iter(columns.values()))}
    info: dict[str, Any] = {
        "source": recipe.source,
        "format": fmt,
        "preprocess": _preprocess_description(recipe.preprocess),
        "split": [s.model_dump() for s in splits] or None,
        "shuffle": recipe.shuffle,
        "seed": recipe.seed,
        "limit": recipe.limit,
        "classes_from": recipe.classes_from,
        "source_samples": n,
        "input_name": recipe.input_name,
    }
    return DataSource(columns, labels, order, info, named=named, classes=classes)


def _preprocess_description(pp: Preprocess) -> dict[str, Any]:
    """The declared preprocessing as JSON values, defaults included so a manifest is complete."""
    return pp.model_dump(mode="json")
