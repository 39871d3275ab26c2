"""Readers: idx (gz or not), npz, image folders, class-name files, with the DataErrors for bad files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from edgeopt.data.readers import (
    decode_image,
    find_idx_pair,
    list_image_folder,
    read_class_names,
    read_idx,
    read_npz,
)
from edgeopt.errors import DataError


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trips(tmp_path: Path, make_idx, compress: bool) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = make_idx(tmp_path / "x-images-idx3-ubyte", images, compress)
    np.testing.assert_array_equal(read_idx(path), images)


def test_read_idx_float_is_native_endian(tmp_path: Path, make_idx) -> None:
    values = np.linspace(-1, 1, 6, dtype=np.float32)
    out = read_idx(make_idx(tmp_path / "f-idx1-ubyte", values, False))
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, values)


def test_read_idx_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(b"\x1f\x8b\x08\x00 not idx")
    with pytest.raises(DataError, match="not an idx file"):
        read_idx(path)


def test_read_idx_truncated(tmp_path: Path, make_idx) -> None:
    path = make_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 4, 4), np.uint8), False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)


def test_read_idx_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 20)[:-6])
    with pytest.raises(DataError, match=str(path)):
        read_idx(path)


def test_find_idx_pair(mnist_dir: Path) -> None:
    images, labels = find_idx_pair(mnist_dir)
    assert images.name == "t10k-images-idx3-ubyte.gz"
    assert labels is not None and labels.name == "t10k-labels-idx1-ubyte.gz"
    assert find_idx_pair(images) == (images, labels)


def test_find_idx_pair_without_labels(tmp_path: Path, make_idx) -> None:
    make_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 3, 3), np.uint8), False)
    assert find_idx_pair(tmp_path)[1] is None


def test_find_idx_pair_ambiguous_and_missing(tmp_path: Path, make_idx) -> None:
    with pytest.raises(DataError, match="no idx images file"):
        find_idx_pair(tmp_path)
    for prefix in ("train", "t10k"):
        make_idx(tmp_path / f"{prefix}-images-idx3-ubyte", np.zeros((2, 3, 3), np.uint8), False)
    with pytest.raises(DataError, match="several idx image files"):
        find_idx_pair(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        find_idx_pair(tmp_path / "nowhere")


def test_list_image_folder_sorted_classes(image_folder: Path) -> None:
    paths, labels, classes = list_image_folder(image_folder)
    assert classes == ["n001_a", "n002_b", "n003_c"]
    assert labels is not None and labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert all(p.parent.name == classes[label] for p, label in zip(paths, labels, strict=True))
    assert not any(p.suffix == ".txt" for p in paths)


def test_list_image_folder_with_class_list(image_folder: Path) -> None:
    _, labels, classes = list_image_folder(image_folder, ["n003_c", "n002_b", "zzz", "n001_a"])
    assert labels is not None and labels.tolist() == [3, 3, 1, 1, 0, 0]
    assert classes == ["n003_c", "n002_b", "zzz", "n001_a"]
    with pytest.raises(DataError, match="not in the classes_from list"):
        list_image_folder(image_folder, ["n001_a"])


def test_list_image_folder_empty(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"no images found in {tmp_path}"):
        list_image_folder(tmp_path)
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "readme.md").write_text("x")
    with pytest.raises(DataError, match="no images found in"):
        list_image_folder(tmp_path)


def test_list_image_folder_flat_is_unlabeled(image_folder: Path) -> None:
    paths, labels, classes = list_image_folder(image_folder / "n002_b")
    assert len(paths) == 2 and labels is None and classes is None


def test_list_image_folder_missing_or_file(tmp_path: Path, cifar_npz: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        list_image_folder(tmp_path / "missing")
    with pytest.raises(DataError, match="is not a folder"):
        list_image_folder(cifar_npz)


def test_decode_image_modes_and_corrupt_file(image_folder: Path) -> None:
    path = image_folder / "n001_a" / "n001_a_0.png"
    assert decode_image(path, "RGB").shape == (40, 60, 3)
    assert decode_image(path, "L").shape == (40, 60, 1)
    bad = image_folder / "n001_a" / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="cannot decode image .*broken.jpg"):
        decode_image(bad, "RGB")


def test_read_npz_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_npz(tmp_path / "none.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read"):
        read_npz(bad)
    pickled = tmp_path / "objects.npz"
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="plain numeric arrays"):
        read_npz(pickled)


def test_read_class_names(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{"classes": ["cat", "dog"]}')
    (tmp_path / "l.json").write_text('["a", "b", "c"]')
    (tmp_path / "c.tsv").write_text("0\tn01\ttench\n1\tn02\tgoldfish\n")
    (tmp_path / "c.txt").write_text("great white shark\n\nhammerhead\n")
    assert read_class_names(tmp_path / "c.json") == ["cat", "dog"]
    assert read_class_names(tmp_path / "l.json") == ["a", "b", "c"]
    assert read_class_names(tmp_path / "c.tsv") == ["n01", "n02"]
    assert read_class_names(tmp_path / "c.txt") == ["great white shark", "hammerhead"]
    (tmp_path / "bad.json").write_text('{"x": 1}')
    with pytest.raises(DataError, match="no list of class names"):
        read_class_names(tmp_path / "bad.json")
