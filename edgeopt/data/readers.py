"""Readers for the supported data files: npz archives, MNIST idx files, image folders and class-name lists."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgeopt.errors import DataError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff"})
IDX_IMAGES = "images-idx3-ubyte"
IDX_LABELS = "labels-idx1-ubyte"
# idx type codes -> big-endian numpy dtypes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def require_exists(path: Path, what: str) -> Path:
    """Return `path` if it exists, else raise a DataError naming it."""
    if not path.exists():
        raise DataError(f"{what} {path} does not exist", "check the path (relative recipe paths start at the recipe)")
    return path


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Load every array of an .npz file (no pickles)."""
    require_exists(path, "data file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except ValueError as exc:
        raise DataError(f"cannot read {path}: {exc}", "save plain numeric arrays with numpy.savez") from exc
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path} as .npz: {exc}", "save the data with numpy.savez") from exc


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (MNIST format), gzipped or not, into a native-endian array."""
    require_exists(path, "idx file")
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read idx file {path}: {exc}", "replace the file with an intact copy") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an idx file (bad magic number)", "point the source at MNIST-style idx files")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"idx file {path} is truncated in its header", "replace the file with an intact copy")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(dims)) if dims else 0
    if len(raw) - header < count * dtype.itemsize:
        raise DataError(
            f"idx file {path} is truncated: header says {list(dims)} but the data is shorter",
            "replace the file with an intact copy",
        )
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def find_idx_pair(source: Path) -> tuple[Path, Path | None]:
    """The images idx file and its labels file (or None) for a folder or an images idx file."""
    require_exists(source, "data path")
    if source.is_file():
        images = source
    else:
        candidates = sorted(p for p in source.iterdir() if IDX_IMAGES in p.name and p.is_file())
        if not candidates:
            raise DataError(
                f"no idx images file (*{IDX_IMAGES}[.gz]) in {source}",
                "put the MNIST idx files in that folder, or set format to npz or imagefolder",
            )
        prefixes = {p.name.split(IDX_IMAGES)[0] for p in candidates}
        if len(prefixes) > 1:
            names = ", ".join(p.name for p in candidates)
            raise DataError(
                f"several idx image files in {source} ({names})",
                "set source to the images file you want, e.g. .../t10k-images-idx3-ubyte.gz",
            )
        images = candidates[0]
    prefix = images.name.split(IDX_IMAGES)[0]
    labels = sorted(p for p in images.parent.iterdir() if p.is_file() and p.name.startswith(prefix + IDX_LABELS))
    return images, (labels[0] if labels else None)


def is_image_file(path: Path) -> bool:
    """True for a visible file with a known image suffix."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def list_image_folder(
    folder: Path, classes: list[str] | None = None
) -> tuple[list[Path], np.ndarray | None, list[str] | None]:
    """Image paths, labels and class names of a folder with one subfolder per class (sorted names -> 0..K-1).

    A folder holding images directly (no class subfolders) gives unlabeled data.
    """
    require_exists(folder, "image folder")
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder", "point an imagefolder source at a folder of class subfolders")
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subfolders:
        paths = sorted(p for p in folder.iterdir() if is_image_file(p))
        if not paths:
            raise DataError(f"no images found in {folder}", "put the images in one subfolder per class")
        return paths, None, None
    names = [p.name for p in subfolders]
    if classes is not None:
        unknown = [n for n in names if n not in classes]
        if unknown:
            raise DataError(
                f"class folders {unknown[:5]} of {folder} are not in the classes_from list",
                "fix classes_from or remove those folders",
            )
        index = {name: i for i, name in enumerate(classes)}
    else:
        index = {name: i for i, name in enumerate(names)}
    paths: list[Path] = []
    labels: list[int] = []
    for sub in subfolders:
        for p in sorted(sub.iterdir()):
            if is_image_file(p):
                paths.append(p)
                labels.append(index[sub.name])
    if not paths:
        raise DataError(f"no images found in {folder}", "put the images in one subfolder per class")
    return paths, np.asarray(labels, dtype=np.int64), (classes if classes is not None else names)


def decode_image(path: Path, mode: str) -> np.ndarray:
    """Decode one image with Pillow into an HWC uint8 array in the given mode (RGB or L)."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert(mode))
    except FileNotFoundError as exc:
        raise DataError(f"image {path} does not exist", "the folder changed while reading: re-run") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot decode image {path}: {exc}", "remove or replace the file") from exc
    return array[..., None] if array.ndim == 2 else array


def read_class_names(path: Path) -> list[str]:
    """Class names in label order from .json (a list or {"classes": [...]}), .tsv (index, name, ...) or .txt."""
    require_exists(path, "classes file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"cannot parse {path}: {exc}", "write a JSON list of class names") from exc
        names = data.get("classes") if isinstance(data, dict) else data
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(f"{path} holds no list of class names", 'write a list or {"classes": [...]}')
        return names
    names = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split("\t")] if "\t" in line else [line.strip()]
        if not fields[0]:
            continue
        names.append(fields[1] if len(fields) > 1 and fields[0].isdigit() else fields[0])
    if not names:
        raise DataError(f"{path} holds no class names", "write one class name per line")
    return names
