"""Calibrate once: tables are kept per (model fingerprint, data, samples) in the compile's shared state and,
when the compile has a cache, on disk, so every target and every later build reuses the same statistics."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import onnx

from edgeopt.errors import DataError, EdgeoptError
from edgeopt.fileio import canonical_json, sha256_bytes
from edgeopt.quant.calibration_table import CalibrationTable
from edgeopt.quant.collector import DEFAULT_BATCH, bind_to, collect_statistics, select_samples
from edgeopt.quant.graph import activation_tensors, graph_fingerprint, static_op_types
from edgeopt.quant.ranges import DEFAULT_PERCENTILE
from edgeopt.quant.statistics import NUM_BINS

log = logging.getLogger(__name__)

SHARED_TABLES = "calibration_tables"  # ctx.shared key: {table key: CalibrationTable}
SHARED_DIR = "calibration_cache_dir"  # ctx.shared key: folder where tables persist across compiles (optional)
_VERSION = "1"


def table_key(fingerprint: str, data: dict[str, Any], samples: int, num_bins: int) -> str:
    """Full sha256 naming a table: the model's computation, the data and how much of it, the bin count."""
    parts = {"v": _VERSION, "model": fingerprint, "data": data, "samples": samples, "bins": num_bins}
    return sha256_bytes(canonical_json(parts).encode())


def calibrate(
    model: onnx.ModelProto,
    data: Any,
    *,
    method: str = "minmax",
    percentile: float = DEFAULT_PERCENTILE,
    samples: int | None = None,
    tensors: list[str] | None = None,
    batch_size: int = DEFAULT_BATCH,
    threads: int | None = None,
    shared: dict[str, Any] | None = None,
    num_bins: int = NUM_BINS,
) -> CalibrationTable:
    """The calibration table of `model` on `data`: reused from `shared` (or its cache folder) when one covers the
    tensors, else collected in one streaming pass. Without `tensors`, every activation a static quantizer may need."""
    if data is None:
        raise DataError("static quantization needs calibration data", "pass --calibration DATA")
    selected = select_samples(bind_to(model, data), samples)
    wanted = sorted(tensors) if tensors is not None else activation_tensors(model, static_op_types())
    fingerprint = graph_fingerprint(model)
    key = table_key(fingerprint, selected.describe(), len(selected), num_bins)
    memory: dict[str, CalibrationTable] = shared.setdefault(SHARED_TABLES, {}) if shared is not None else {}
    folder = Path(shared[SHARED_DIR]) if shared is not None and shared.get(SHARED_DIR) else None
    table = memory.get(key)
    if table is None and folder is not None and (folder / f"{key}.json").is_file():
        try:
            table = CalibrationTable.load(folder / f"{key}.json")
        except DataError:
            log.warning("ignoring a damaged cached calibration table %s", folder / f"{key}.json")
            table = None
    if table is not None and not table.missing(wanted) and table.has_histograms:
        memory[key] = table
        return table.with_method(method, percentile)
    if table is not None:
        wanted = sorted(set(wanted) | set(table.tensors))
    result = collect_statistics(model, selected, wanted, batch_size=batch_size, threads=threads, num_bins=num_bins)
    table = CalibrationTable(
        result.stats, method, percentile=percentile, samples=result.samples, data=selected.describe(),
        fingerprint=fingerprint, num_bins=num_bins,
    )
    memory[key] = table
    if folder is not None:
        try:
            table.save(folder / f"{key}.json")
        except (OSError, EdgeoptError):
            log.warning("could not write the calibration cache in %s", folder)
    return table
