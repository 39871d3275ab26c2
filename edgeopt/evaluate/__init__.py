"""Evaluation: accuracy, fidelity against the reference, interleaved latency, and the machine record."""

from edgeopt.evaluate.accuracy import evaluate_runners
from edgeopt.evaluate.fidelity import FidelityStats, compare_outputs
from edgeopt.evaluate.latency import LatencyResult, time_interleaved
from edgeopt.evaluate.machine import machine_info, machine_summary

__all__ = [
    "FidelityStats",
    "LatencyResult",
    "compare_outputs",
    "evaluate_runners",
    "machine_info",
    "machine_summary",
    "time_interleaved",
]
