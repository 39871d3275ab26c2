"""Preprocessing declared once (resize, crop, scale, normalise, layout, dtype) and applied to every use of the data."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgeopt.errors import DataError

PositiveInt = Annotated[int, Field(gt=0)]
SizeSpec = PositiveInt | tuple[PositiveInt, PositiveInt]
ChannelValues = float | list[float]

# The layouts a source array can have; "HW" is a batch of single-channel images without a channel axis.
SourceLayout = Literal["NCHW", "NHWC", "HW"]
_IMAGE_CHANNELS = (1, 3, 4)
# ITU-R 601-2 luma weights, the ones Pillow uses for RGB -> L.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class Preprocess(BaseModel):
    """How raw samples become model inputs: resize, center crop, (x*scale - mean)/std, layout and dtype."""

    model_config = ConfigDict(extra="forbid")

    resize: SizeSpec | None = None
    center_crop: SizeSpec | None = None
    scale: float | None = None
    mean: ChannelValues | None = None
    std: ChannelValues | None = None
    layout: Literal["NCHW", "NHWC"] | None = None
    dtype: Literal["float32", "float16", "uint8", "int8", "int64"] = "float32"
    channels: Literal["RGB", "L"] | None = None
    source_layout: Literal["auto", "NCHW", "NHWC", "HW", "none"] = "auto"

    @field_validator("std")
    @classmethod
    def _std_nonzero(cls, value: ChannelValues | None) -> ChannelValues | None:
        values = value if isinstance(value, list) else [value]
        if any(v == 0 for v in values if v is not None):
            raise ValueError("std must not be 0")
        return value

    def is_given(self) -> bool:
        """True when any transform was declared (source_layout alone only says how to read the data)."""
        return bool(self.model_fields_set - {"source_layout"})

    def image_mode(self) -> str:
        """The Pillow mode decoded images are converted to."""
        return self.channels or "RGB"


def detect_layout(array: np.ndarray, override: str = "auto") -> SourceLayout | None:
    """Layout of a batch of samples: NHWC/NCHW for 4-D images, HW for 3-D uint8 images, None for other data."""
    if override == "none":
        return None
    if override != "auto":
        return override  # type: ignore[return-value]
    if array.ndim == 4:
        if array.shape[-1] in _IMAGE_CHANNELS and array.shape[1] not in _IMAGE_CHANNELS:
            return "NHWC"
        if array.shape[1] in _IMAGE_CHANNELS:
            return "NCHW"
    if array.ndim == 3 and array.dtype == np.uint8:
        return "HW"
    return None


def resized_size(height: int, width: int, resize: int | tuple[int, int]) -> tuple[int, int]:
    """Target (h, w): an int sets the shorter side keeping the aspect ratio (torchvision's rule), a pair is exact."""
    if not isinstance(resize, int):
        return resize[0], resize[1]
    if height <= width:
        return resize, int(resize * width / height)
    return int(resize * height / width), resize


def _resize_one(sample: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of one HW or HWC sample with Pillow; float data is resized channel by channel."""
    h, w = size
    if sample.dtype == np.uint8 and (sample.ndim == 2 or sample.shape[-1] in _IMAGE_CHANNELS):
        squeeze = sample.ndim == 3 and sample.shape[-1] == 1
        image = Image.fromarray(sample[..., 0] if squeeze else sample)
        out = np.asarray(image.resize((w, h), Image.Resampling.BILINEAR))
        return out[..., None] if squeeze else out
    planes = sample[..., None] if sample.ndim == 2 else sample
    channels = [
        np.asarray(
            Image.fromarray(planes[..., c].astype(np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR)
        )
        for c in range(planes.shape[-1])
    ]
    out = np.stack(channels, axis=-1).astype(sample.dtype if sample.dtype.kind == "f" else np.float32)
    return out[..., 0] if sample.ndim == 2 else out


def _crop_one(sample: np.ndarray, crop: int | tuple[int, int]) -> np.ndarray:
    """Center crop of one HW or HWC sample, with torchvision's rounding of the offsets."""
    ch, cw = (crop, crop) if isinstance(crop, int) else crop
    h, w = sample.shape[0], sample.shape[1]
    if ch > h or cw > w:
        raise DataError(
            f"center_crop {ch}x{cw} is larger than the {h}x{w} image",
            "set preprocess.resize to at least the crop size, or a smaller center_crop",
        )
    top, left = round((h - ch) / 2.0), round((w - cw) / 2.0)
    return sample[top : top + ch, left : left + cw]


def resize_and_crop(sample: np.ndarray, pp: Preprocess) -> np.ndarray:
    """Apply the geometric steps (resize, then center crop) to one HW or HWC sample."""
    if pp.resize is not None:
        sample = _resize_one(sample, resized_size(sample.shape[0], sample.shape[1], pp.resize))
    if pp.center_crop is not None:
        sample = _crop_one(sample, pp.center_crop)
    return sample


def _channel_values(values: ChannelValues, channels: int | None, what: str) -> np.ndarray | float:
    """A scalar, or a per-channel vector that broadcasts over the trailing channel axis."""
    if not isinstance(values, list):
        return float(values)
    if len(values) == 1:
        return float(values[0])
    if channels != len(values):
        have = "no channel axis" if channels is None else f"{channels} channels"
        raise DataError(
            f"preprocess.{what} has {len(values)} values but the images have {have}",
            f"give one {what} value per channel, or a single value",
        )
    return np.asarray(values, dtype=np.float32)


def _convert_channels(batch: np.ndarray, layout: str, channels: str | None) -> tuple[np.ndarray, str]:
    """Convert a canonical NHWC/HW batch to the requested channel mode (RGB or L)."""
    if channels == "L" and layout == "NHWC" and batch.shape[-1] in (3, 4):
        gray = batch[..., :3].astype(np.float32) @ _LUMA
        return (np.round(gray).astype(np.uint8) if batch.dtype == np.uint8 else gray)[..., None], layout
    if channels == "RGB":
        if layout == "HW":
            return np.repeat(batch[..., None], 3, axis=-1), "NHWC"
        if batch.shape[-1] == 1:
            return np.repeat(batch, 3, axis=-1), layout
        if batch.shape[-1] == 4:
            return batch[..., :3], layout
    return batch, layout


def _to_dtype(batch: np.ndarray, dtype: str) -> np.ndarray:
    """Cast, rounding and clipping float data into the range of an integer target."""
    target = np.dtype(dtype)
    if target.kind in "iu" and batch.dtype.kind == "f":
        info = np.iinfo(target)
        batch = np.clip(np.round(batch), info.min, info.max)
    return batch.astype(target, copy=False)


def preprocess_images(batch: np.ndarray, source_layout: SourceLayout, pp: Preprocess) -> np.ndarray:
    """Turn a batch of images (NHWC, NCHW or HW source layout) into model-ready arrays."""
    if not pp.is_given() and batch.dtype.kind == "f":
        return batch
    layout = "HW" if source_layout == "HW" else "NHWC"
    if source_layout == "NCHW":
        batch = batch.transpose(0, 2, 3, 1)
    batch, layout = _convert_channels(batch, layout, pp.channels)
    if pp.resize is not None or pp.center_crop is not None:
        samples = [resize_and_crop(s, pp) for s in batch]
        batch = np.stack(samples) if samples else batch
    normalise = pp.scale is not None or pp.mean is not None or pp.std is not None
    if normalise or np.dtype(pp.dtype).kind == "f":
        channels = batch.shape[-1] if layout == "NHWC" else None
        x = batch.astype(np.float32)
        if pp.scale is not None:
            x *= np.float32(pp.scale)
        if pp.mean is not None:
            x -= _channel_values(pp.mean, channels, "mean")
        if pp.std is not None:
            x /= _channel_values(pp.std, channels, "std")
        batch = x
    target = pp.layout or ("NCHW" if source_layout == "NCHW" else None)
    if layout == "HW" and target is not None:
        batch = batch[:, None] if target == "NCHW" else batch[..., None]
    elif layout == "NHWC" and target == "NCHW":
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(_to_dtype(batch, pp.dtype))


def preprocess_plain(batch: np.ndarray, pp: Preprocess) -> np.ndarray:
    """Non-image arrays (token ids, features) only get the dtype conversion, and only when one was declared."""
    if "dtype" in pp.model_fields_set:
        return _to_dtype(batch, pp.dtype)
    return batch


def output_layout(source_layout: SourceLayout | None, pp: Preprocess) -> str | None:
    """The layout preprocess_images produces for a source layout (None for non-image data)."""
    if source_layout is None:
        return None
    if pp.layout is not None:
        return pp.layout
    if source_layout == "HW" and pp.channels == "RGB":
        return "NHWC"
    return source_layout
