"""Preprocessing: geometry, (x*scale - mean)/std, layout, dtype and channel conversion, against numpy references."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.data.preprocess import (
    Preprocess,
    detect_layout,
    output_layout,
    preprocess_images,
    preprocess_plain,
    resize_and_crop,
    resized_size,
)
from edgeopt.errors import DataError

NHWC = np.random.default_rng(0).integers(0, 256, size=(4, 10, 12, 3), dtype=np.uint8)


def test_mnist_style_normalisation_to_nchw() -> None:
    hw = np.random.default_rng(1).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    pp = Preprocess(scale=1 / 255, mean=0.1307, std=0.3081, layout="NCHW")
    out = preprocess_images(hw, "HW", pp)
    assert out.shape == (3, 1, 28, 28) and out.dtype == np.float32
    expected = (hw.astype(np.float32) / 255 - 0.1307) / 0.3081
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-5, atol=1e-6)
    assert preprocess_images(hw, "HW", Preprocess(layout="NHWC")).shape == (3, 28, 28, 1)
    assert preprocess_images(hw, "HW", Preprocess()).shape == (3, 28, 28)


def test_per_channel_mean_std_nhwc_to_nchw() -> None:
    mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
    out = preprocess_images(NHWC, "NHWC", Preprocess(scale=1 / 255, mean=mean, std=std, layout="NCHW"))
    expected = ((NHWC / 255.0 - np.array(mean)) / np.array(std)).transpose(0, 3, 1, 2)
    assert out.shape == (4, 3, 10, 12) and out.flags.c_contiguous
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_nchw_source_keeps_its_layout_unless_asked() -> None:
    nchw = NHWC.transpose(0, 3, 1, 2)
    assert preprocess_images(nchw, "NCHW", Preprocess(scale=2.0)).shape == (4, 3, 10, 12)
    out = preprocess_images(nchw, "NCHW", Preprocess(layout="NHWC"))
    np.testing.assert_array_equal(out, NHWC.astype(np.float32))


def test_float_arrays_without_preprocess_pass_through() -> None:
    data = np.random.default_rng(2).standard_normal((2, 3, 4, 4)).astype(np.float64)
    assert preprocess_images(data, "NCHW", Preprocess()) is data
    assert preprocess_images(data, "NCHW", Preprocess(source_layout="NCHW")) is data


def test_plain_arrays_only_get_declared_dtype() -> None:
    ids = np.arange(12, dtype=np.int32).reshape(2, 6)
    assert preprocess_plain(ids, Preprocess(scale=0.5)) is ids
    out = preprocess_plain(ids, Preprocess(dtype="int64"))
    assert out.dtype == np.int64 and out.tolist() == ids.tolist()


def test_integer_targets_round_and_clip() -> None:
    out = preprocess_images(NHWC, "NHWC", Preprocess(mean=128, dtype="int8"))
    np.testing.assert_array_equal(out, (NHWC.astype(np.int16) - 128).astype(np.int8))
    raw = preprocess_images(NHWC, "NHWC", Preprocess(dtype="uint8", layout="NCHW"))
    np.testing.assert_array_equal(raw, NHWC.transpose(0, 3, 1, 2))


def test_resize_shorter_side_and_exact() -> None:
    assert resized_size(256, 341, 224) == (224, 298)
    assert resized_size(400, 300, 100) == (133, 100)
    assert resized_size(10, 20, (7, 9)) == (7, 9)
    out = resize_and_crop(NHWC[0], Preprocess(resize=20))
    assert out.shape == (20, 24, 3) and out.dtype == np.uint8
    floats = resize_and_crop(NHWC[0].astype(np.float32), Preprocess(resize=(5, 6)))
    assert floats.shape == (5, 6, 3) and floats.dtype == np.float32


def test_center_crop_matches_torchvision_offsets() -> None:
    sample = np.arange(7 * 9).reshape(7, 9)
    out = resize_and_crop(sample, Preprocess(center_crop=(4, 4)))
    top, left = round((7 - 4) / 2.0), round((9 - 4) / 2.0)
    np.testing.assert_array_equal(out, sample[top : top + 4, left : left + 4])
    with pytest.raises(DataError, match="center_crop 8x8 is larger than the 7x9 image"):
        resize_and_crop(sample, Preprocess(center_crop=8))


def test_mean_length_must_match_channels() -> None:
    with pytest.raises(DataError, match="preprocess.mean has 3 values but the images have 1 channels"):
        preprocess_images(NHWC[..., :1], "NHWC", Preprocess(mean=[0.1, 0.2, 0.3]))
    with pytest.raises(DataError, match="no channel axis"):
        preprocess_images(NHWC[..., 0], "HW", Preprocess(std=[1.0, 2.0]))


def test_channel_conversion() -> None:
    gray = preprocess_images(NHWC, "NHWC", Preprocess(channels="L", dtype="uint8"))
    assert gray.shape == (4, 10, 12, 1)
    expected = np.round(NHWC.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    np.testing.assert_array_equal(gray[..., 0], expected.astype(np.uint8))
    rgb = preprocess_images(NHWC[..., 0], "HW", Preprocess(channels="RGB", layout="NCHW"))
    assert rgb.shape == (4, 3, 10, 12)
    assert output_layout("HW", Preprocess(channels="RGB")) == "NHWC"


@pytest.mark.parametrize(
    ("shape", "dtype", "override", "expected"),
    [
        ((2, 28, 28, 1), np.uint8, "auto", "NHWC"),
        ((2, 32, 32, 3), np.float32, "auto", "NHWC"),
        ((2, 3, 32, 32), np.float32, "auto", "NCHW"),
        ((2, 1, 28, 28), np.uint8, "auto", "NCHW"),
        ((2, 3, 4, 3), np.uint8, "auto", "NCHW"),
        ((2, 3, 4, 3), np.uint8, "NHWC", "NHWC"),
        ((2, 28, 28), np.uint8, "auto", "HW"),
        ((2, 28, 28), np.float32, "auto", None),
        ((2, 16), np.int64, "auto", None),
        ((2, 32, 32, 3), np.uint8, "none", None),
    ],
)
def test_detect_layout(shape: tuple[int, ...], dtype: type, override: str, expected: str | None) -> None:
    assert detect_layout(np.zeros(shape, dtype), override) == expected
