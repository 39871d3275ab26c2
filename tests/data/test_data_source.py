"""load_data and DataSource: formats, selection (split, shuffle, limit, subset), binding, streaming, describe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import edgeopt.data.columns as columns_module
from edgeopt.artifacts.base import TensorSpec
from edgeopt.data import Batch, DataSource, Recipe, load_data
from edgeopt.errors import DataError

IMAGE_INPUT = [TensorSpec("pixel_values", ("N", 3, 8, 8))]


def test_npz_images_and_labels(cifar_npz: Path) -> None:
    data = load_data(cifar_npz)
    assert len(data) == 12 and data.has_labels and data.input_names == ["input"]
    sizes = [len(b.labels) for b in data.batches(5)]
    assert sizes == [5, 5, 2]
    batch = data.take(3)
    assert isinstance(batch, Batch) and batch.inputs["input"].shape == (3, 8, 8, 3)
    assert batch.labels.tolist() == [0, 1, 2]
    raw = np.load(cifar_npz)["x"]
    np.testing.assert_array_equal(batch.inputs["input"], raw[:3].astype(np.float32))
    assert data.take(100).labels.shape == (12,)


def test_split_shuffle_limit_subset(tmp_path: Path, cifar_npz: Path) -> None:
    def recipe(**kw: object) -> DataSource:
        return load_data(Recipe(source=str(cifar_npz), **kw))

    assert recipe(split={"start": -4}).labels.tolist() == [0, 1, 2, 3]
    assert recipe(split=[{"stop": 2}, {"start": 10}]).source_indices.tolist() == [0, 1, 10, 11]
    a = recipe(shuffle=True, seed=1).source_indices
    assert sorted(a.tolist()) == list(range(12)) and a.tolist() != list(range(12))
    assert recipe(shuffle=True, seed=1).source_indices.tolist() == a.tolist()
    assert recipe(shuffle=True, seed=2).source_indices.tolist() != a.tolist()
    limited = recipe(split={"start": 2}, shuffle=True, seed=1, limit=3)
    assert len(limited) == 3 and all(i >= 2 for i in limited.source_indices)
    sub = load_data(cifar_npz).subset(-3, None)
    assert sub.labels.tolist() == [1, 2, 3] and sub.describe()["subset"] == [[-3, None]]
    assert len(load_data(cifar_npz).subset(2, 5).subset(1)) == 2


def test_describe_is_json_ready(cifar_npz: Path) -> None:
    data = load_data(Recipe(source=str(cifar_npz), split={"stop": 6}, preprocess={"scale": 0.5, "layout": "NCHW"}))
    info = json.loads(json.dumps(data.describe()))
    assert info["source"] == str(cifar_npz) and info["format"] == "npz" and info["n"] == 6
    assert info["preprocess"]["scale"] == 0.5 and info["split"] == [{"start": None, "stop": 6}]
    assert info["seed"] == 0 and info["layouts"] == {"input": "NCHW"}


def test_bind_single_unnamed_input(cifar_npz: Path) -> None:
    data = load_data(Recipe(source=str(cifar_npz), preprocess={"layout": "NCHW"}), IMAGE_INPUT)
    assert data.input_names == ["pixel_values"]
    assert data.take(2).inputs["pixel_values"].shape == (2, 3, 8, 8)
    named = load_data(Recipe(source=str(cifar_npz), input_name="image"))
    assert named.input_names == ["image"]
    two_inputs = [TensorSpec("image", ("N", 8, 8, 3)), TensorSpec("scale", (1,))]
    with pytest.raises(DataError, match=r"also needs \['scale'\]"):
        named.bind(two_inputs)
    with pytest.raises(DataError, match="set input_name"):
        load_data(cifar_npz).bind(two_inputs)
    with pytest.raises(DataError, match="input_name 'image' is not a model input"):
        named.bind(IMAGE_INPUT)


def test_multi_input_npz_by_name(token_npz: Path, bert_inputs: list[TensorSpec]) -> None:
    data = load_data(token_npz, bert_inputs)
    assert data.input_names == ["input_ids", "attention_mask", "token_type_ids"] and not data.has_labels
    batch = data.take(4)
    assert all(a.shape == (4, 16) and a.dtype == np.int64 for a in batch.inputs.values())
    assert batch.labels is None
    unbound = load_data(token_npz)
    assert sorted(unbound.input_names) == ["attention_mask", "input_ids", "token_type_ids"]
    with pytest.raises(DataError, match=r"data arrays \[.*\] do not match the model inputs \[.*'ids'.*\]"):
        unbound.bind([TensorSpec("ids", ("b", "s"), "int64"), TensorSpec("mask", ("b", "s"), "int64")])


def test_dict_of_arrays_and_dtype_cast() -> None:
    arrays = {"input_ids": np.ones((3, 5), np.int32), "attention_mask": np.ones((3, 5), np.int32)}
    specs = [TensorSpec(n, ("b", 5), "int64") for n in arrays]
    data = load_data(arrays, specs)
    batch = data.take(3)
    assert {a.dtype for a in batch.inputs.values()} == {np.dtype(np.int64)}
    assert data.describe()["source"] == "<arrays>"
    assert load_data({"x": np.zeros((2, 4), np.float32)}).input_names == ["input"]


def test_mismatched_lengths_and_no_inputs(tmp_path: Path) -> None:
    path = tmp_path / "uneven.npz"
    np.savez(path, x=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(DataError, match="different lengths"):
        load_data(path)
    only_labels = tmp_path / "labels.npz"
    np.savez(only_labels, y=np.zeros(3))
    with pytest.raises(DataError, match="holds no input arrays"):
        load_data(only_labels)


def test_mnist_folder(mnist_dir: Path, mnist_images: np.ndarray) -> None:
    data = load_data(mnist_dir)
    assert len(data) == 20 and data.labels.tolist() == [i % 10 for i in range(20)]
    assert data.describe()["format"] == "mnist"
    np.testing.assert_array_equal(data.take(2).inputs["input"], mnist_images[:2].astype(np.float32))


def test_image_folder_streams_only_the_batch(image_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[Path] = []
    original = columns_module.decode_image

    def counting(path: Path, mode: str) -> np.ndarray:
        decoded.append(path)
        return original(path, mode)

    monkeypatch.setattr(columns_module, "decode_image", counting)
    pp = {"resize": 12, "center_crop": 8, "scale": 1 / 255, "layout": "NCHW"}
    data = load_data(Recipe(source=str(image_folder), preprocess=pp))
    assert decoded == [] and len(data) == 6 and data.classes == ["n001_a", "n002_b", "n003_c"]
    assert data.take(1).inputs["input"].shape == (1, 3, 8, 8) and len(decoded) == 1
    decoded.clear()
    for batch in data.batches(4):
        assert len(decoded) == len(batch.labels)
        decoded.clear()
    data.validate(IMAGE_INPUT)


def test_image_folder_sizes_must_agree(image_folder: Path) -> None:
    with pytest.raises(DataError, match="images differ in size after preprocessing.*set preprocess.resize"):
        load_data(image_folder).take(2)
    assert load_data(Recipe(source=str(image_folder), preprocess={"resize": [9, 7]})).take(6).inputs["input"].shape == (
        6,
        9,
        7,
        3,
    )


def test_image_folder_grayscale_and_class_file(image_folder: Path, tmp_path: Path) -> None:
    classes = tmp_path / "classes.txt"
    classes.write_text("n003_c\nn002_b\nn001_a\n")
    recipe = Recipe(source=str(image_folder), classes_from=str(classes), preprocess={"channels": "L", "resize": [8, 8]})
    data = load_data(recipe)
    assert data.labels.tolist() == [2, 2, 1, 1, 0, 0]
    assert data.take(1).inputs["input"].shape == (1, 8, 8, 1)


@pytest.mark.parametrize("make", ["missing", "text", "folder_recipe", "bad_format"])
def test_missing_and_unknown_sources(tmp_path: Path, make: str) -> None:
    if make == "missing":
        spec: object = tmp_path / "absent.npz"
        needle = "absent.npz does not exist"
    elif make == "text":
        spec = tmp_path / "notes.csv"
        spec.write_text("1,2")
        needle = "cannot tell the data format"
    elif make == "folder_recipe":
        spec = Recipe(source=str(tmp_path / "gone"), format="imagefolder")
        needle = "gone does not exist"
    else:
        spec = Recipe(source=str(tmp_path), format="npz")
        needle = "is not an .npz file"
    with pytest.raises(DataError, match=needle):
        load_data(spec)  # type: ignore[arg-type]


def test_recipe_paths_and_objects(tmp_path: Path, cifar_npz: Path, make_recipe) -> None:
    path = make_recipe(tmp_path, f"source: {cifar_npz.name}\nsplit: {{start: 4, stop: 8}}\n")
    assert load_data(path).labels.tolist() == [0, 1, 2, 3]
    assert len(load_data({"source": str(cifar_npz), "limit": 2})) == 2
    with pytest.raises(DataError, match="missing.yaml does not exist"):
        load_data(tmp_path / "missing.yaml")
    with pytest.raises(DataError, match="classes file .* does not exist"):
        load_data(Recipe(source=str(cifar_npz), classes_from=str(tmp_path / "nope.json")))
    with pytest.raises(DataError, match="cannot load data from an object of type int"):
        load_data(3)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="batch size must be a positive integer"):
        next(load_data(cifar_npz).batches(0))
