"""The content-addressed cache: full-length keys over everything that shapes an output, atomic store, lookup."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

from edgeopt.cache import Cache, default_cache_dir, tool_versions

PARTS = {"input": "ab" * 32, "pass": "simplify", "version": "1", "config": {"onnxslim": True, "onnxsim": False},
         "target": None, "extra": {}, "tools": {"onnx": "1.0"}, "seed": 0}


def test_key_is_a_full_sha256_of_canonical_parts() -> None:
    key = Cache.key(PARTS)
    assert len(key) == 64 and int(key, 16) >= 0
    reordered = dict(reversed(list(PARTS.items())))
    reordered["config"] = {"onnxsim": False, "onnxslim": True}
    assert Cache.key(reordered) == key  # key order never matters


@pytest.mark.parametrize(
    "change",
    [{"input": "cd" * 32}, {"version": "2"}, {"config": {"onnxslim": False, "onnxsim": False}},
     {"target": "ort-cpu"}, {"tools": {"onnx": "1.1"}}, {"seed": 1}, {"extra": {"calibration": {"n": 8}}}],
)
def test_key_changes_with_every_part(change: dict) -> None:
    assert Cache.key({**PARTS, **change}) != Cache.key(PARTS)


def test_store_and_lookup(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    produced = tmp_path / "out.onnx"
    produced.write_bytes(b"model bytes")
    key = Cache.key(PARTS)
    assert cache.lookup(key, ".onnx") is None
    stored = cache.store(key, produced, {"pass": "simplify", "cached": False})
    assert stored.parent.parent == tmp_path / "cache" / "objects" and stored.parent.name == key[:2]
    assert stored.read_bytes() == b"model bytes" and produced.exists()
    path, record = cache.lookup(key, ".onnx")
    assert path == stored and record == {"pass": "simplify", "cached": False}
    assert cache.lookup(key, ".tflite") is None  # the suffix is part of the object's name
    assert not [p for p in stored.parent.iterdir() if p.name.endswith(".tmp")]  # no temporary files left


def test_damaged_entries_are_misses(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    produced = tmp_path / "out.onnx"
    produced.write_bytes(b"x")
    key = Cache.key(PARTS)
    stored = cache.store(key, produced, {"a": 1})
    record = stored.with_suffix(".json")
    record.write_text("{not json")
    assert cache.lookup(key, ".onnx") is None
    record.write_text(json.dumps({"a": 1}))
    stored.unlink()
    assert cache.lookup(key, ".onnx") is None


def test_disabled_cache_stores_nothing(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache", enabled=False)
    produced = tmp_path / "out.onnx"
    produced.write_bytes(b"x")
    key = Cache.key(PARTS)
    assert cache.store(key, produced, {}) == produced
    assert cache.lookup(key, ".onnx") is None
    assert not (tmp_path / "cache").exists()


def test_tool_versions() -> None:
    versions = tool_versions(("onnxruntime", "onnx", "onnx", "edgeopt-no-such-tool"))
    assert list(versions) == ["edgeopt-no-such-tool", "onnx", "onnxruntime"]
    assert versions["onnx"] == metadata.version("onnx")
    assert versions["edgeopt-no-such-tool"] == "absent"


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGEOPT_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert Cache().root == tmp_path / "c"
    monkeypatch.delenv("EDGEOPT_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "edgeopt"
