"""The machine record every report carries: CPU model, ISA flags that decide int8 speed, threads, versions."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from edgeopt.cache import tool_versions

_ISA_FLAGS = {
    "avx2": "avx2",
    "fma": "fma",
    "avx512f": "avx512f",
    "avx512_vnni": "avx512_vnni",
    "avx_vnni": "avx_vnni",
    "avx512_bf16": "avx512_bf16",
    "amx_tile": "amx_tile",
    "amx_int8": "amx_int8",
    "asimddp": "arm_dotprod",
    "i8mm": "arm_i8mm",
}


def _cpuinfo() -> tuple[str, set[str]]:
    path = Path("/proc/cpuinfo")
    model, flags = platform.processor() or platform.machine(), set()
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model") and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    return model, flags


def simd_float_lanes() -> int:
    """float32 lanes of this CPU's widest vector unit as ONNX Runtime's conv kernels use it (its NCHWc block): 16 with
    AVX-512, 8 with AVX2 (and elsewhere, where 8 is a multiple of every narrower width)."""
    return 16 if "avx512f" in _cpuinfo()[1] else 8


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """CPU model, ISA flags, core count, OS, Python and the versions of the runtimes edgeopt drives."""
    model, flags = _cpuinfo()
    isa = {name: (flag in flags) for flag, name in _ISA_FLAGS.items()}
    vnni = isa["avx512_vnni"] or isa["avx_vnni"] or isa["arm_dotprod"]
    return {
        "cpu": model,
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "threads": threads,
        "isa": isa,
        "int8_dot_product": vnni,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": tool_versions(["edgeopt", "onnx", "onnxruntime", "onnxslim", "torch", "ai-edge-litert", "numpy"]),
    }


def machine_summary(info: dict[str, Any]) -> str:
    """One line for reports: 'AMD EPYC ... (x86_64, 2 cores; AVX2, no AVX-512, no VNNI), 2 threads'."""
    isa = info["isa"]
    parts = []
    parts.append("AVX2" if isa.get("avx2") else "no AVX2")
    parts.append("AVX-512" if isa.get("avx512f") else "no AVX-512")
    parts.append("VNNI" if info.get("int8_dot_product") else "no VNNI")
    if isa.get("amx_int8"):
        parts.append("AMX")
    threads = f", {info['threads']} threads" if info.get("threads") else ""
    return f"{info['cpu']} ({info['arch']}, {info['cores']} cores; {', '.join(parts)}){threads}"
