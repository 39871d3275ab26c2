"""Small real data files for the data-layer tests: idx files, npz archives and image folders made in tmp_path."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeopt.artifacts.base import TensorSpec


def write_idx(path: Path, array: np.ndarray, compress: bool) -> Path:
    """Write `array` in the idx format (magic 0,0,type,ndim; big-endian dims; data), optionally gzipped."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.float32): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


@pytest.fixture
def make_idx() -> Callable[[Path, np.ndarray, bool], Path]:
    """The idx writer, for tests that build odd idx files."""
    return write_idx


@pytest.fixture
def mnist_images() -> np.ndarray:
    """20 deterministic 28x28 uint8 images."""
    return np.random.default_rng(1).integers(0, 256, size=(20, 28, 28), dtype=np.uint8)


@pytest.fixture
def mnist_dir(tmp_path: Path, mnist_images: np.ndarray) -> Path:
    """A folder with gzipped t10k idx images and labels (labels = index % 10)."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "t10k-images-idx3-ubyte", mnist_images, compress=True)
    write_idx(folder / "t10k-labels-idx1-ubyte", (np.arange(20) % 10).astype(np.uint8), compress=True)
    return folder


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Three class folders (given out of order) with two images each, PNG and JPEG, of different sizes."""
    root = tmp_path / "images"
    rng = np.random.default_rng(2)
    for cls in ("n003_c", "n001_a", "n002_b"):
        (root / cls).mkdir(parents=True)
        for i, (h, w) in enumerate(((40, 60), (50, 36))):
            pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            suffix = "png" if i == 0 else "jpg"
            Image.fromarray(pixels).save(root / cls / f"{cls}_{i}.{suffix}")
    (root / "n001_a" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def cifar_npz(tmp_path: Path) -> Path:
    """An npz of 12 uint8 NHWC 8x8 RGB images `x` with labels `y`."""
    rng = np.random.default_rng(3)
    path = tmp_path / "small.npz"
    np.savez(path, x=rng.integers(0, 256, size=(12, 8, 8, 3), dtype=np.uint8), y=np.arange(12, dtype=np.int64) % 4)
    return path


@pytest.fixture
def token_npz(tmp_path: Path) -> Path:
    """An npz with one int64 array per input of a BERT-like model, no labels."""
    rng = np.random.default_rng(4)
    path = tmp_path / "tokens.npz"
    ids = rng.integers(0, 1000, size=(6, 16), dtype=np.int64)
    np.savez(path, input_ids=ids, attention_mask=np.ones_like(ids), token_type_ids=np.zeros_like(ids))
    return path


@pytest.fixture
def bert_inputs() -> list[TensorSpec]:
    """Input specs of a BERT-like encoder with dynamic batch and sequence dims."""
    return [TensorSpec(n, ("batch", "seq"), "int64") for n in ("input_ids", "attention_mask", "token_type_ids")]


def write_recipe(folder: Path, text: str, name: str = "recipe.yaml") -> Path:
    """Write a recipe YAML file into `folder`."""
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture
def make_recipe() -> Callable[..., Path]:
    """The recipe writer."""
    return write_recipe
