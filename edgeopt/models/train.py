"""A small, deterministic classifier training loop: SGD or AdamW, one-cycle (warm-up + cosine) or cosine schedule."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np
import torch
from torch import nn

from edgeopt.errors import ConfigError, DataError

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
AUGMENTS = ("crop_flip",)


def crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop after `pad` pixels of zero padding, then a random horizontal flip, per image of an NCHW batch."""
    n, c, h, w = x.shape
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (oy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w))[:, None, None, :]
    out = padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def _resolve_augment(augment: str | Augment | None) -> Augment | None:
    if augment is None or callable(augment):
        return augment
    if augment == "crop_flip":
        return crop_flip
    raise ConfigError(f"unknown augment '{augment}'", f"use one of {', '.join(AUGMENTS)}, a callable, or None")


def _as_tensors(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x.float()
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64)) if not isinstance(y, torch.Tensor) else y.long()
    if xt.shape[0] != yt.shape[0] or yt.ndim != 1:
        raise DataError(
            f"training inputs ({tuple(xt.shape)}) and labels ({tuple(yt.shape)}) do not match",
            "give one integer label per input row",
        )
    return xt, yt


@contextlib.contextmanager
def _deterministic(num_threads: int | None) -> Iterator[None]:
    """Deterministic kernels and (if asked) a thread count for the duration; the previous settings are restored."""
    was_det = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True, warn_only=True)
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_det, warn_only=was_warn)
        torch.set_num_threads(threads)


def _num_batches(n: int, batch_size: int) -> int:
    full, rest = divmod(n, batch_size)
    # A trailing batch of one is dropped: BatchNorm cannot train on it.
    return full + (1 if rest > 1 or (rest == 1 and full == 0) else 0)


def _batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    return list(torch.randperm(n, generator=gen).split(batch_size))[: _num_batches(n, batch_size)]


def _lr_factor(schedule: str, total: int) -> Callable[[int], float]:
    """Learning-rate multiplier per step: "onecycle" warms up linearly from 1/25 over 25% of the steps, then both
    schedules anneal with a half cosine to zero (written out rather than OneCycleLR, which fails on very short runs)."""
    warmup = max(1, round(0.25 * total)) if schedule == "onecycle" else 0

    def factor(step: int) -> float:
        if step < warmup:
            return 0.04 + 0.96 * step / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return factor


def train_classifier(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    augment: str | Augment | None = None,
    progress: bool = True,
    *,
    optimizer: Literal["sgd", "adamw"] = "sgd",
    schedule: Literal["onecycle", "cosine"] = "onecycle",
    weight_decay: float = 5e-4,
    label_smoothing: float = 0.0,
    num_threads: int | None = None,
) -> nn.Module:
    """Train `model` in place with cross-entropy on (x, y); same seed and thread count give the same weights.

    `augment` is None, "crop_flip" (4-pixel pad + random crop + horizontal flip, for 32x32 images) or a callable
    (batch, generator) -> batch. `lr` is the peak learning rate. Progress goes to stderr, one line per epoch.
    Returns the model in eval mode.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ConfigError(
            f"invalid training settings epochs={epochs} batch_size={batch_size} lr={lr}", "use positive values"
        )
    if optimizer not in ("sgd", "adamw") or schedule not in ("onecycle", "cosine"):
        raise ConfigError(
            f"unknown optimizer '{optimizer}' or schedule '{schedule}'",
            "use optimizer 'sgd' or 'adamw' and schedule 'onecycle' or 'cosine'",
        )
    aug = _resolve_augment(augment)
    xt, yt = _as_tensors(x, y)
    gen = torch.Generator().manual_seed(seed)
    if len(xt) < 2:
        raise DataError("training needs at least 2 examples", "pass a larger training set")
    total = epochs * _num_batches(len(xt), batch_size)
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay
        )
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(schedule, total))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    with _deterministic(num_threads):
        start = time.perf_counter()
        for epoch in range(epochs):
            model.train()
            seen, loss_sum, correct = 0, 0.0, 0
            for idx in _batches(len(xt), batch_size, gen):
                xb, yb = xt[idx], yt[idx]
                if aug is not None:
                    xb = aug(xb, gen)
                logits = model(xb)
                loss = loss_fn(logits, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                seen += len(idx)
                loss_sum += loss.item() * len(idx)
                correct += int((logits.argmax(1) == yb).sum())
            if progress:
                sys.stderr.write(
                    f"epoch {epoch + 1}/{epochs}: loss {loss_sum / seen:.4f}, train acc {correct / seen:.4f}, "
                    f"{time.perf_counter() - start:.1f}s\n"
                )
    return model.eval()


def accuracy(
    model: nn.Module, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, batch_size: int = 256
) -> float:
    """Top-1 accuracy of `model` (switched to eval mode) on (x, y)."""
    xt, yt = _as_tensors(x, y)
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(xt), batch_size):
            correct += int((model(xt[s : s + batch_size]).argmax(1) == yt[s : s + batch_size]).sum())
    return correct / len(xt)
