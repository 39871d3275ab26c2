"""Score quantized builds against their float model on a fixed data set: top-1 accuracy with labels, top-1 agreement
with the float model without them, cosine similarity for outputs that are not class scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from edgeopt.errors import ConfigError
from edgeopt.evaluate.fidelity import sample_cosines
from edgeopt.quant.collector import bind_to, check_batch, model_input_specs
from edgeopt.quant.session import fixed_batch, ort_session, run

EVAL_BATCH = 64


@dataclass
class Score:
    """One build's score: the metric's value (a fraction), and its drop from the float model in points."""

    metric: str
    value: float
    drop_points: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": round(self.value, 6), "drop_points": round(self.drop_points, 4),
                "n": self.n}


class QuantEvaluator:
    """Runs the float model once, then scores any build of it on the same samples."""

    def __init__(self, float_model: onnx.ModelProto, data: Any, *, source: str, samples: int | None = None,
                 threads: int | None = None, batch_size: int = EVAL_BATCH, use_labels: bool = True,
                 metric: str = "auto") -> None:
        data = bind_to(float_model, data)
        self.data = data.subset(0, samples) if samples is not None and samples < len(data) else data
        self.source = source
        self.threads = threads
        self.batch_size = batch_size
        self._float_session = ort_session(float_model, threads)
        self.labels = bool(use_labels and getattr(self.data, "has_labels", False))
        self._float_top1: list[np.ndarray] = []
        self.classifier = True
        self.float_value = 1.0
        correct = n = 0
        for batch, out in self._outputs(self._float_session, model_input_specs(float_model)):
            if out.ndim != 2 or out.shape[1] < 2:
                self.classifier = False
                break
            top1 = np.argmax(out, axis=1)
            self._float_top1.append(top1)
            if self.labels and batch.labels is not None:
                correct += int(np.sum(top1 == batch.labels.reshape(-1)))
            n += len(top1)
        if self.classifier and self.labels and n:
            self.float_value = correct / n
        self.metric = ("top1" if self.labels else "top1_agreement") if self.classifier else "cosine"
        if metric == "top1" and not use_labels:
            metric = "auto"  # scored on calibration data: top-1 agreement stands in (the caller notes it)
        if metric == "cosine" or (metric == "top1_agreement" and self.classifier):
            self.metric = metric
        elif metric != "auto" and metric != self.metric:
            raise ConfigError(
                f"the quality metric {metric} cannot be measured on the {source} data "
                f"({'no labels' if metric == 'top1' else 'the output is not class scores'})",
                "declare --metric cosine (or auto), or give labelled evaluation data for top1")

    def describe(self) -> str:
        """What the scores mean, for notes and reports."""
        n = len(self.data)
        what = {
            "top1": f"top-1 accuracy on {n} {self.source} samples",
            "top1_agreement": f"top-1 agreement with the float model on {n} {self.source} samples (no labels)",
            "cosine": f"mean per-sample output cosine to the float model on {n} {self.source} samples",
        }[self.metric]
        return what

    def _outputs(self, session: Any, specs: list[Any] | None = None) -> Any:
        max_batch = fixed_batch(session)
        seen = 0
        for batch in self.data.batches(self.batch_size):
            if specs is not None:
                check_batch(batch.inputs, specs, self.data, seen)
            seen += len(next(iter(batch.inputs.values())))
            yield batch, run(session, batch.inputs, None, max_batch)[0]

    def score(self, model: onnx.ModelProto) -> Score:
        """Score a build of the float model; drop_points > 0 means worse than float."""
        session = ort_session(model, self.threads)
        if self.metric == "cosine":
            total = 0.0
            float_iter = self._outputs(self._float_session)
            for (_, out), (_, ref) in zip(self._outputs(session), float_iter, strict=True):
                total += float(sample_cosines(ref, out).sum())
            cos = total / len(self.data) if len(self.data) else 1.0
            return Score("cosine", cos, (1.0 - cos) * 100.0, len(self.data))
        correct = agree = n = 0
        for (batch, out), ref in zip(self._outputs(session), self._float_top1, strict=True):
            top1 = np.argmax(out, axis=1)
            agree += int(np.sum(top1 == ref))
            if self.labels and batch.labels is not None:
                correct += int(np.sum(top1 == batch.labels.reshape(-1)))
            n += len(top1)
        if self.metric == "top1":
            value = correct / n if n else 0.0
            return Score("top1", value, (self.float_value - value) * 100.0, n)
        value = agree / n if n else 0.0
        return Score("top1_agreement", value, (1.0 - value) * 100.0, n)
