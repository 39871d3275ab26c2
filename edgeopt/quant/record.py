"""The quantization record an INT8 build carries (ONNX metadata; a .tflite lowered from it keeps a copy), and what
reports and build folders take from it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import onnx

from edgeopt.errors import EdgeoptError
from edgeopt.quant.calibration_table import CalibrationTable
from edgeopt.quant.store import SHARED_DIR, SHARED_TABLES, table_key

log = logging.getLogger(__name__)

RECORD_KEY = "edgeopt.quantization"
TABLE_KEY = "edgeopt.calibration"
_TOP_SENSITIVE = 10


def attach(model: onnx.ModelProto, record: dict[str, Any], table: CalibrationTable | None = None) -> None:
    """Store the record (and the ranges-only calibration table) in the model's metadata, replacing older ones."""
    keep = [p for p in model.metadata_props if p.key not in (RECORD_KEY, TABLE_KEY)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    entry = model.metadata_props.add()
    entry.key, entry.value = RECORD_KEY, json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    if table is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = TABLE_KEY, table.to_json(histograms=False).strip()


def _metadata(model: Any) -> dict[str, str]:
    proto = getattr(model, "proto", model)
    if isinstance(proto, onnx.ModelProto):
        return {p.key: p.value for p in proto.metadata_props}
    carried = getattr(model, "metadata", None)  # a lowered build (.tflite) carries its ONNX source's entries
    return dict(carried.get("source_metadata") or {}) if isinstance(carried, dict) else {}


def read_record(model: Any) -> dict[str, Any] | None:
    """The quantization record of an OnnxModel or ModelProto, or None for builds that are not quantized."""
    raw = _metadata(model).get(RECORD_KEY)
    try:
        return json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return None


def report_fields(artifact: Any, row: dict[str, Any]) -> dict[str, Any]:
    """Row fields for report.json: 'quantization' (what was done) and 'diagnosis' (why INT8 is not faster)."""
    record = read_record(artifact)
    if record is None:
        return {}
    summary = {k: v for k, v in record.items() if k not in ("sensitivity_db", "diagnosis")}
    sens = record.get("sensitivity_db") or {}
    if sens:
        worst = sorted(sens.items(), key=lambda kv: (kv[1], kv[0]))[:_TOP_SENSITIVE]
        summary["most_sensitive_db"] = dict(worst)
    diagnosis = list(record.get("diagnosis") or [])
    speedup = row.get("speedup_vs_baseline")
    if speedup is not None and speedup < 1.0 and row.get("status") == "ok":
        head = f"measured in this report: {speedup:.2f}x the speed of the reference (slower)"
        diagnosis = [head, *diagnosis[1:]] if diagnosis else [head]
    return {"quantization": summary, "diagnosis": diagnosis}


def write_build_files(artifact: Any, dest: Path, shared: dict[str, Any]) -> Path | None:
    """Write the calibration table of a quantized build beside it (`<name>.calibration.json`): the full table with
    histograms when this compile or its cache holds it, else the ranges the build carries."""
    meta = _metadata(artifact)
    raw = meta.get(TABLE_KEY)
    if not raw:
        return None
    target = dest.with_name(dest.stem + ".calibration.json")
    try:
        compact = CalibrationTable.from_json(raw, "the build's calibration table")
        table = _full_table(compact, shared) or compact
        return table.save(target, histograms=table.has_histograms)
    except (EdgeoptError, OSError) as exc:
        log.warning("could not write %s: %s", target, exc)
        return None


def _full_table(compact: CalibrationTable, shared: dict[str, Any]) -> CalibrationTable | None:
    """The table with histograms behind a ranges-only one (same model, data and samples), in memory or on disk."""
    key = table_key(compact.fingerprint, compact.data, compact.samples, compact.num_bins)
    table = (shared.get(SHARED_TABLES) or {}).get(key)
    folder = shared.get(SHARED_DIR)
    if table is None and folder and (Path(folder) / f"{key}.json").is_file():
        try:
            table = CalibrationTable.load(Path(folder) / f"{key}.json")
        except EdgeoptError:
            return None
    if table is None or not table.has_histograms:
        return None
    full = table.with_method(compact.method, compact.percentile)
    return full if full.ranges() == compact.ranges() else None
