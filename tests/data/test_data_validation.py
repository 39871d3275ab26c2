"""DataSource.validate: every misfit between data and model raises one DataError line naming problem and fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeopt.artifacts.base import TensorSpec
from edgeopt.data import Recipe, load_data
from edgeopt.errors import DataError

MNIST_INPUT = [TensorSpec("input.1", (1, 1, 28, 28))]


def _error(data_spec: object, model_inputs: list[TensorSpec], **kw: object) -> DataError:
    with pytest.raises(DataError) as info:
        load_data(data_spec).validate(model_inputs, **kw)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message and info.value.fix, message
    return info.value


def test_valid_data_passes_and_batch_dim_is_free(mnist_dir: Path) -> None:
    recipe = Recipe(source=str(mnist_dir), preprocess={"scale": 1 / 255, "layout": "NCHW"})
    bound = load_data(recipe).validate(MNIST_INPUT, min_samples=20)
    assert bound.input_names == ["input.1"] and next(bound.batches(8)).inputs["input.1"].shape == (8, 1, 28, 28)


def test_dynamic_dims_are_ignored(cifar_npz: Path, token_npz: Path, bert_inputs: list[TensorSpec]) -> None:
    load_data(cifar_npz).validate([TensorSpec("img", (None, "h", "w", 3))])
    load_data(cifar_npz).validate([TensorSpec("img", (-1, 8, 0, 3))])
    load_data(token_npz).validate(bert_inputs)


def test_layout_mismatch_nhwc(tmp_path: Path) -> None:
    path = tmp_path / "nhwc.npz"
    np.savez(path, x=np.zeros((5, 28, 28, 1), np.float32))
    err = _error(path, MNIST_INPUT)
    assert err.problem == "data is NHWC [N,28,28,1] but input 'input.1' expects NCHW [1,1,28,28]"
    assert err.fix == "set preprocess.layout: NCHW in the recipe"


def test_layout_mismatch_nchw_and_hw(cifar_npz: Path, mnist_dir: Path) -> None:
    recipe = Recipe(source=str(cifar_npz), preprocess={"layout": "NCHW"})
    err = _error(recipe, [TensorSpec("x", ("N", 8, 8, 3))])
    assert "data is NCHW [N,3,8,8]" in str(err) and err.fix == "set preprocess.layout: NHWC in the recipe"
    err = _error(mnist_dir, MNIST_INPUT)
    assert "data is HW [N,28,28]" in str(err) and err.fix == "set preprocess.layout: NCHW in the recipe"


def test_shape_mismatch(cifar_npz: Path) -> None:
    recipe = Recipe(source=str(cifar_npz), preprocess={"layout": "NCHW"})
    err = _error(recipe, [TensorSpec("images", (1, 3, 224, 224))])
    assert "data for input 'images' has shape [N,3,8,8] but the model expects [1,3,224,224]" in str(err)
    assert "resize" in (err.fix or "")
    err = _error(recipe, [TensorSpec("images", ("batch", 3, 8))])
    assert "expects [batch,3,8]" in str(err)


def test_float_data_for_integer_input(tmp_path: Path, bert_inputs: list[TensorSpec]) -> None:
    path = tmp_path / "float_tokens.npz"
    np.savez(path, **{spec.name: np.zeros((2, 4), np.float32) for spec in bert_inputs})
    err = _error(path, bert_inputs)
    assert "is float32 but the model expects int64" in str(err) and "preprocess.dtype: int64" in (err.fix or "")


@pytest.mark.parametrize(("bad", "kind"), [(np.nan, "NaN"), (np.inf, "Inf")])
def test_non_finite_values_name_the_sample(tmp_path: Path, bad: float, kind: str) -> None:
    x = np.zeros((100, 4), np.float32)
    x[70, 2] = bad
    path = tmp_path / "bad.npz"
    np.savez(path, x=x)
    err = _error(path, [TensorSpec("features", ("N", 4))])
    assert f"sample 70 (source index 70) of input 'features' contains {kind}" in str(err)
    err = _error(Recipe(source=str(path), split={"start": 60}), [TensorSpec("features", ("N", 4))])
    assert "sample 10 (source index 70)" in str(err)


def test_empty_sources(tmp_path: Path, cifar_npz: Path) -> None:
    path = tmp_path / "empty.npz"
    np.savez(path, x=np.zeros((0, 4), np.float32))
    assert "has no samples" in str(_error(path, [TensorSpec("f", ("N", 4))]))
    err = _error(Recipe(source=str(cifar_npz), split={"start": 100}), [TensorSpec("x", ("N", 8, 8, 3))])
    assert "has no samples" in str(err) and "split" in (err.fix or "")
    empty_folder = tmp_path / "imgs"
    (empty_folder / "class_a").mkdir(parents=True)
    with pytest.raises(DataError, match=f"no images found in {empty_folder}"):
        load_data(empty_folder)


def test_min_samples(cifar_npz: Path) -> None:
    err = _error(cifar_npz, [TensorSpec("x", ("N", 8, 8, 3))], min_samples=100)
    assert "has 12 samples but at least 100 are needed" in str(err)


def test_name_mismatch_lists_both_sides(token_npz: Path) -> None:
    err = _error(token_npz, [TensorSpec("input_ids", ("b", "s"), "int64"), TensorSpec("mask", ("b", "s"), "int64")])
    assert "'attention_mask'" in str(err) and "'mask'" in str(err)
