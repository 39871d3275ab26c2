"""How the prune pass meets a budget: bisect the channel ratio, measuring MACs or ONNX Runtime FP32 latency."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeopt.artifacts.base import TensorSpec
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.artifacts.torch_model import TorchModel
from edgeopt.backends.base import get_backend
from edgeopt.evaluate.latency import time_interleaved
from edgeopt.passes.base import PassContext


def bisect_ratio(
    cost: Callable[[float], float], budget: float, hi: float, steps: int, tolerance: float
) -> float | None:
    """The smallest ratio in (0, hi] whose cost meets the budget, by bisection (cost falls as the ratio grows).

    None when even `hi` misses the budget; stops early once a ratio lands within `tolerance` under the budget.
    """
    if cost(hi) > budget:
        return None
    lo = 0.0
    for _ in range(steps):
        if budget - cost(hi) <= tolerance:
            break
        mid = round((lo + hi) / 2, 6)
        if cost(mid) <= budget:
            hi = mid
        else:
            lo = mid
    return hi


class LatencyProbe:
    """Times pruned candidates against the unpruned model: exported to ONNX, run by ONNX Runtime FP32 at batch 1,
    interleaved round by round so that machine drift hits both alike."""

    def __init__(
        self,
        base: Any,
        specs: list[TensorSpec],
        ctx: PassContext,
        threads: int | None,
        seconds: float,
    ) -> None:
        self.specs = specs
        self.ctx = ctx
        self.threads = threads or os.cpu_count() or 1
        self.seconds = seconds
        self.count = 0
        self.backend = get_backend("ort")()
        self.base = self._runner(base)
        self.inputs = TorchModel.from_module(base, specs).random_inputs(batch=1, seed=ctx.seed)

    def _runner(self, module: Any) -> Any:
        from edgeopt.passes.torch.export_onnx import ExportOnnx

        path = Path(self.ctx.work_dir) / f"prune-latency-{os.getpid()}-{self.count}.onnx"
        self.count += 1
        model = TorchModel.from_module(module, self.specs)
        try:  # the TorchScript exporter is several times faster than dynamo; ORT fuses both graphs alike
            ExportOnnx({"exporter": "torchscript"}).run(model, self.ctx, path)
        except Exception:  # noqa: BLE001 - a model it cannot trace goes through dynamo
            ExportOnnx({"exporter": "dynamo"}).run(model, self.ctx, path)
        runner = self.backend.load(OnnxModel.from_file(path), threads=self.threads)
        path.unlink(missing_ok=True)
        return runner

    def fraction(self, module: Any) -> float:
        """Latency of `module` as a fraction of the unpruned model's (median of per-round ratios)."""
        cand = self._runner(module)
        res = time_interleaved(
            {"base": lambda: self.base.run(self.inputs), "cand": lambda: cand.run(self.inputs)},
            iters=1000,
            warmup=5,
            baseline="base",
            seed=self.ctx.seed,
            max_seconds=self.seconds,
        )
        speedup = res.speedup("cand")
        return 1.0 / speedup if speedup else float("inf")

    def describe(self) -> dict[str, Any]:
        """How the latency was measured (for the pass notes)."""
        return {"runtime": "onnxruntime FP32", "batch": 1, "threads": self.threads, "seconds_per_probe": self.seconds}
