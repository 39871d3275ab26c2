"""The training loop of the distill and finetune passes: seeded, deterministic on one machine, resumable.

Every random choice is drawn from a generator seeded by (seed, epoch) or (seed, step), so a run resumed from a
checkpoint at step k continues exactly as the uninterrupted run would have. Checkpoints are written atomically to
`ctx.shared["checkpoint_dir"]` (the pipeline's cache folder for this step's cache key), every `checkpoint_every`
steps and on Ctrl-C, and removed once training finishes.
"""

from __future__ import annotations

import io
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from edgeopt.errors import ConfigError, DataError
from edgeopt.fileio import write_bytes_atomic
from edgeopt.models.train import _deterministic, _lr_factor, _num_batches, crop_flip
from edgeopt.passes.base import PassConfig, PassContext

log = logging.getLogger(__name__)
DEFAULT_EPOCHS = 10
CHECKPOINT = "train.ckpt"
LossFn = Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor | None], torch.Tensor]


class TrainConfig(PassConfig):
    """Budget (epochs or steps; default 10 epochs), optimizer and schedule shared by the training passes."""

    epochs: int | None = Field(None, ge=0)
    steps: int | None = Field(None, ge=0)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(0.02, gt=0, description="peak learning rate (cosine decay to zero)")
    optimizer: Literal["sgd", "adamw"] = "sgd"
    weight_decay: float = Field(5e-4, ge=0)
    augment: Literal["none", "crop_flip"] = Field("none", description="crop_flip: 4-px pad, random crop, h-flip")
    threads: int | None = Field(None, ge=1, description="torch threads; the same count gives the same weights")
    val_samples: int = Field(1000, ge=0, description="evaluation samples for the progress display (not selection)")
    checkpoint_every: int = Field(100, ge=1, description="steps between checkpoints")
    progress: bool = True


def budget_problems(name: str, cfg: TrainConfig) -> list[str]:
    """A zero or doubly given training budget, as problems the pipeline reports before any work."""
    if cfg.epochs is not None and cfg.steps is not None:
        return [f"pass '{name}': give epochs or steps, not both"]
    if cfg.epochs == 0 or cfg.steps == 0:
        which = "epochs" if cfg.epochs == 0 else "steps"
        return [f"pass '{name}' has a training budget of 0 {which}: nothing would be trained; set {which} >= 1"]
    return []


def labelled_batches(
    data: Any, specs: list[Any], batch_size: int, limit: int | None = None
) -> Iterator[tuple[tuple[torch.Tensor, ...], torch.Tensor | None]]:
    """Batches of (inputs in spec order, labels or None) from a DataSource, at most `limit` of them."""
    for i, batch in enumerate(data.batches(batch_size)):
        if limit is not None and i >= limit:
            return
        x = tuple(torch.from_numpy(np.ascontiguousarray(batch.inputs[s.name])) for s in specs)
        y = torch.from_numpy(batch.labels.astype(np.int64)) if batch.labels is not None else None
        yield x, y


def _arrays(data: Any, specs: list[Any]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None]:
    """The whole training set in memory (inputs in spec order, labels or None)."""
    batch = data.take(len(data))
    x = tuple(torch.from_numpy(np.ascontiguousarray(batch.inputs[s.name])) for s in specs)
    y = torch.from_numpy(batch.labels.astype(np.int64)) if batch.labels is not None else None
    return x, y


def _generator(seed: int, stream: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + stream * 7_919 + index) % (2**63))


class Checkpoint:
    """One atomic checkpoint file in the step's checkpoint folder (or nothing, when there is no folder)."""

    def __init__(self, folder: Path | None) -> None:
        self.path = Path(folder) / CHECKPOINT if folder is not None else None

    def load(self) -> dict[str, Any] | None:
        """The saved training state, or None (no folder, no file, or an unreadable one)."""
        if self.path is None or not self.path.is_file():
            return None
        try:
            return torch.load(self.path, weights_only=True)
        except Exception:  # noqa: BLE001 - a damaged checkpoint is ignored: training starts over
            log.warning("ignoring unreadable checkpoint %s", self.path)
            return None

    def save(self, state: dict[str, Any]) -> None:
        """Write the state atomically (a crash mid-write leaves the previous checkpoint)."""
        if self.path is not None:
            buf = io.BytesIO()
            torch.save(state, buf)
            write_bytes_atomic(self.path, buf.getvalue())

    def clear(self) -> None:
        """Remove the checkpoint once training has finished."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class _Display:
    """A progress bar with loss and validation accuracy on a terminal; one log line per evaluation otherwise."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self.label, self.total, self.bar, self.task = label, total, None, None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            self.bar = Progress(*cols, console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(label, total=total)

    def update(self, step: int, loss: float, val: float | None) -> None:
        """Show the step count, smoothed loss and latest validation accuracy."""
        text = f"{self.label} loss {loss:.4f}" + (f" val {val:.1%}" if val is not None else "")
        if self.bar is not None:
            self.bar.update(self.task, completed=step, description=text)  # type: ignore[arg-type]
        elif val is not None:
            log.info("%s (step %d/%d)", text, step, self.total)

    def close(self) -> None:
        """Remove the bar from the terminal."""
        if self.bar is not None:
            self.bar.stop()


def accuracy(module: nn.Module, data: Any, specs: list[Any], limit: int) -> float | None:
    """Top-1 of `module` on the first `limit` labelled samples of `data` (None without labels)."""
    if data is None or limit == 0 or not data.has_labels:
        return None
    module.eval()
    correct = seen = 0
    with torch.no_grad():
        for x, y in labelled_batches(data.subset(0, limit), specs, 256):
            correct += int((module(*x).argmax(1) == y).sum())
            seen += len(y)  # type: ignore[arg-type]
    return correct / seen if seen else None


def train(
    student: nn.Module,
    loss_fn: LossFn,
    cfg: TrainConfig,
    ctx: PassContext,
    specs: list[Any],
    label: str,
    extra: nn.Module | None = None,
    stop_at: int | None = None,
) -> dict[str, Any]:
    """Train `student` (and `extra`, e.g. feature adapters) in place; returns a summary for the pass notes.

    `stop_at` ends the run after that step as Ctrl-C would (checkpoint written, KeyboardInterrupt raised).
    """
    x, y = _arrays(ctx.train_data, specs)
    n = len(x[0])
    if n < 2:
        raise DataError("training needs at least 2 samples", "pass a larger --train set")
    if cfg.augment == "crop_flip" and x[0].dim() != 4:
        raise ConfigError("augment 'crop_flip' needs NCHW image inputs", "set augment: none")
    per_epoch = _num_batches(n, cfg.batch_size)
    total = cfg.steps if cfg.steps is not None else (cfg.epochs or DEFAULT_EPOCHS) * per_epoch
    params = [*student.parameters(), *(extra.parameters() if extra is not None else [])]
    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
        )
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    factor = _lr_factor("cosine", total)
    ckpt = Checkpoint(ctx.shared.get("checkpoint_dir"))
    start, summary = 0, {"steps": total, "epochs": round(total / per_epoch, 2), "resumed_from": None}
    state = ckpt.load()
    if state is not None and 0 < int(state["step"]) <= total:
        student.load_state_dict(state["model"])
        if extra is not None:
            extra.load_state_dict(state["extra"])
        opt.load_state_dict(state["optimizer"])
        start = summary["resumed_from"] = int(state["step"])

    def save(step: int) -> None:
        extra_state = extra.state_dict() if extra is not None else {}
        ckpt.save({"step": step, "model": student.state_dict(), "extra": extra_state, "optimizer": opt.state_dict()})

    display = _Display(label, total, cfg.progress)
    display.update(start, float("nan"), None)
    began, loss_avg, val, epoch, batches = time.perf_counter(), float("nan"), None, -1, []
    completed = start
    try:
        with _deterministic(cfg.threads):
            student.train()
            for step in range(start, total):
                e, i = divmod(step, per_epoch)
                if e != epoch:
                    epoch = e
                    batches = list(torch.randperm(n, generator=_generator(ctx.seed, 0, e)).split(cfg.batch_size))
                idx = batches[i]
                xb = tuple(a[idx].float() if a.is_floating_point() else a[idx] for a in x)
                if cfg.augment == "crop_flip":
                    xb = (crop_flip(xb[0], _generator(ctx.seed, 1, step)), *xb[1:])
                for group in opt.param_groups:
                    group["lr"] = cfg.lr * factor(step)
                loss = loss_fn(student, xb, y[idx] if y is not None else None)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                completed = step + 1
                value = loss.item()
                loss_avg = value if np.isnan(loss_avg) else 0.95 * loss_avg + 0.05 * value
                done = completed
                if done % cfg.checkpoint_every == 0 and done < total:
                    save(done)
                if done % per_epoch == 0 or done == total:
                    val = accuracy(student, ctx.eval_data, specs, cfg.val_samples)
                    student.train()
                display.update(done, loss_avg, val)
                if stop_at is not None and done == stop_at:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        save(completed)
        raise
    finally:
        display.close()
    student.eval()
    ckpt.clear()
    summary.update(loss=round(loss_avg, 4), val_top1=val, wall_s=round(time.perf_counter() - began, 1))
    return summary


def describe_training(summary: dict[str, Any]) -> str:
    """One line of training record for the pass notes."""
    val = summary.get("val_top1")
    text = f"{summary['steps']} steps ({summary['epochs']} epochs), final loss {summary['loss']}, {summary['wall_s']} s"
    if val is not None:
        text += f", top-1 {val:.2%} on the first evaluation samples (display only)"
    if summary.get("resumed_from"):
        text += f"; resumed from the checkpoint at step {summary['resumed_from']}"
    return text
