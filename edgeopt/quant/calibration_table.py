"""CalibrationTable: per-tensor statistics (min/max + histograms) and ranges; the one source of activation ranges for
every target (ONNX Runtime, TFLite, TensorRT), saved as deterministic JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgeopt.errors import ConfigError, DataError
from edgeopt.fileio import sha256_bytes, write_text_atomic
from edgeopt.quant.ranges import DEFAULT_PERCENTILE, METHODS, tensor_range
from edgeopt.quant.statistics import NUM_BINS, TensorStats

SCHEMA = "edgeopt.calibration/1"


class CalibrationTable:
    """Statistics of a float model's activations over a calibration set, plus the default range-setting method."""

    def __init__(
        self,
        stats: dict[str, TensorStats],
        method: str = "minmax",
        *,
        percentile: float = DEFAULT_PERCENTILE,
        samples: int = 0,
        data: dict[str, Any] | None = None,
        fingerprint: str = "",
        num_bins: int = NUM_BINS,
        fixed_ranges: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        if method not in METHODS:
            raise ConfigError(f"unknown calibration method '{method}'", f"use one of: {', '.join(METHODS)}")
        self.stats = dict(sorted(stats.items()))
        self.method = method
        self.percentile = float(percentile)
        self.samples = int(samples)
        self.data = data or {}
        self.fingerprint = fingerprint
        self.num_bins = num_bins
        # A table loaded without histograms keeps only the ranges of its own method.
        self.fixed_ranges = dict(sorted(fixed_ranges.items())) if fixed_ranges else None

    @property
    def tensors(self) -> list[str]:
        """Names of the calibrated tensors, sorted."""
        return sorted(self.fixed_ranges) if self.fixed_ranges is not None else list(self.stats)

    @property
    def has_histograms(self) -> bool:
        """False for a ranges-only table (then only its own method's ranges are available)."""
        return self.fixed_ranges is None

    def with_method(self, method: str, percentile: float | None = None) -> CalibrationTable:
        """The same statistics with another default method (no recomputation of statistics)."""
        if not self.has_histograms and method != self.method:
            raise ConfigError(
                f"this calibration table keeps only '{self.method}' ranges (no histograms)",
                "recalibrate to use another method",
            )
        return CalibrationTable(
            self.stats, method, percentile=self.percentile if percentile is None else percentile,
            samples=self.samples, data=self.data, fingerprint=self.fingerprint, num_bins=self.num_bins,
            fixed_ranges=self.fixed_ranges,
        )

    def ranges(
        self, method: str | None = None, *, percentile: float | None = None, symmetric: bool = False
    ) -> dict[str, tuple[float, float]]:
        """(low, high) per tensor by `method` (default: the table's); `symmetric` gives (-t, t) ranges for
        symmetric int8 targets (TensorRT), computed on |x| where the method uses a histogram."""
        method = method or self.method
        if method not in METHODS:
            raise ConfigError(f"unknown calibration method '{method}'", f"use one of: {', '.join(METHODS)}")
        if self.fixed_ranges is not None:
            if method != self.method:
                raise ConfigError(
                    f"this calibration table keeps only '{self.method}' ranges (no histograms)",
                    "recalibrate to use another method",
                )
            if not symmetric:
                return dict(self.fixed_ranges)
            return {k: (-max(abs(lo), abs(hi)), max(abs(lo), abs(hi))) for k, (lo, hi) in self.fixed_ranges.items()}
        p = self.percentile if percentile is None else percentile
        return {name: tensor_range(st, method, p, symmetric) for name, st in self.stats.items()}

    def missing(self, tensors: list[str]) -> list[str]:
        """Tensors in `tensors` this table has no statistics for."""
        have = set(self.tensors)
        return [t for t in tensors if t not in have]

    def to_dict(self, histograms: bool = True) -> dict[str, Any]:
        """JSON-ready dict; without `histograms` only the ranges of the table's method are kept."""
        ranges = self.ranges()
        tensors: dict[str, Any] = {}
        for name in self.tensors:
            entry: dict[str, Any] = {"range": [ranges[name][0], ranges[name][1]]}
            if histograms and self.has_histograms:
                entry.update(self.stats[name].to_dict())
            tensors[name] = entry
        return {
            "schema": SCHEMA,
            "method": self.method,
            "percentile": self.percentile,
            "samples": self.samples,
            "num_bins": self.num_bins,
            "histograms": bool(histograms and self.has_histograms),
            "fingerprint": self.fingerprint,
            "data": self.data,
            "tensors": tensors,
        }

    def to_json(self, histograms: bool = True) -> str:
        """Deterministic JSON: sorted keys, no whitespace variance, shortest float repr."""
        return json.dumps(self.to_dict(histograms), sort_keys=True, separators=(",", ":"), default=str) + "\n"

    @property
    def sha256(self) -> str:
        """sha256 of the full JSON form (identifies the statistics and the default method)."""
        return sha256_bytes(self.to_json().encode())

    def save(self, path: str | os.PathLike[str], histograms: bool = True) -> Path:
        """Write the table as JSON atomically."""
        return write_text_atomic(path, self.to_json(histograms))

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "calibration table") -> CalibrationTable:
        """Inverse of to_dict; errors name the file and the fix."""
        if not isinstance(d, dict) or d.get("schema") != SCHEMA or not isinstance(d.get("tensors"), dict):
            raise DataError(f"{where} is not an edgeopt calibration table ({SCHEMA})", "recalibrate to write a new one")
        num_bins = int(d.get("num_bins", NUM_BINS))
        kw: dict[str, Any] = {
            "percentile": float(d.get("percentile", DEFAULT_PERCENTILE)), "samples": int(d.get("samples", 0)),
            "data": d.get("data") or {}, "fingerprint": d.get("fingerprint", ""), "num_bins": num_bins,
        }
        try:
            if d.get("histograms", True):
                stats = {k: TensorStats.from_dict(v, num_bins) for k, v in d["tensors"].items()}
                return cls(stats, d.get("method", "minmax"), **kw)
            fixed = {k: (float(v["range"][0]), float(v["range"][1])) for k, v in d["tensors"].items()}
            return cls({}, d.get("method", "minmax"), fixed_ranges=fixed, **kw)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DataError(f"{where} is damaged ({type(exc).__name__}: {exc})", "recalibrate") from exc

    @classmethod
    def from_json(cls, text: str, where: str = "calibration table") -> CalibrationTable:
        """Parse the JSON form."""
        try:
            return cls.from_dict(json.loads(text), where)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where} is not valid JSON", "recalibrate to write a new one") from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CalibrationTable:
        """Read a table written by save()."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"calibration table {path} does not exist", "check the path or recalibrate")
        return cls.from_json(path.read_text(encoding="utf-8"), str(path))

    def __repr__(self) -> str:
        return f"CalibrationTable({len(self.tensors)} tensors, method={self.method}, samples={self.samples})"
