"""The machine's load around a benchmark run: timings are only comparable when the cores were free."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def load_note(label: str | None = None) -> str:
    """'load average at LABEL: 1-min 5-min 15-min (N cores)' (without 'at LABEL' when none is given)."""
    one, five, fifteen = os.getloadavg()
    where = f" at {label}:" if label else ""
    return f"load average{where} {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"


def finish(res: dict[str, Any], path: Path) -> None:
    """Print the load at the start (`res['load_start']`) and now, then write the raw figures to `path` as JSON."""
    start = " ".join(f"{v:.2f}" for v in res["load_start"])
    print(f"\nload average (1, 5, 15 min) at start: {start}; {load_note('end')}")
    path.write_text(json.dumps(res, indent=2, default=str))
    print(f"raw figures: {path}")
