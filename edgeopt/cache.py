"""Content-addressed cache of pass outputs: the key covers everything that shapes the output."""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from edgeopt.fileio import canonical_json, copy_atomic, sha256_bytes, write_json_atomic


def tool_versions(names: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Installed versions of the named distributions ('absent' when not installed)."""
    out = {}
    for name in sorted(set(names)):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def default_cache_dir() -> Path:
    """$EDGEOPT_CACHE_DIR, else ~/.cache/edgeopt."""
    env = os.environ.get("EDGEOPT_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "edgeopt"


class Cache:
    """Stores each pass output under the sha256 of (input hash, pass, version, config, extras, tool versions)."""

    def __init__(self, root: Path | None = None, enabled: bool = True) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled

    @staticmethod
    def key(parts: dict[str, Any]) -> str:
        """Full-length sha256 of the canonical JSON of `parts`."""
        return sha256_bytes(canonical_json(parts).encode())

    def _paths(self, key: str, suffix: str) -> tuple[Path, Path]:
        folder = self.root / "objects" / key[:2]
        return folder / f"{key}{suffix}", folder / f"{key}.json"

    def lookup(self, key: str, suffix: str) -> tuple[Path, dict[str, Any]] | None:
        """The cached output file and its record, or None."""
        if not self.enabled:
            return None
        art, rec = self._paths(key, suffix)
        if art.is_file() and rec.is_file():
            try:
                return art, json.loads(rec.read_text())
            except (OSError, json.JSONDecodeError):
                return None
        return None

    def store(self, key: str, produced: Path, record: dict[str, Any]) -> Path:
        """Copy a produced file into the cache (atomically) with its record; returns the cached path."""
        art, rec = self._paths(key, produced.suffix)
        if not self.enabled:
            return produced
        copy_atomic(produced, art)
        write_json_atomic(rec, record)
        return art
