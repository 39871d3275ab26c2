"""How far two INT8 schemes can agree at best: an arithmetic simulation in torch, not a build.

Issue 10 asks the TensorRT-ready ONNX (symmetric int8 activations, zero point 0) to agree with edgeopt's ORT INT8
build (asymmetric uint8 activations) on >= 99% of top-1 predictions. This script takes the trained network, folds its
BatchNorms into the convolutions, and rounds only what both schemes share: per-channel symmetric int8 weights and the
input of every Conv and Linear, once as uint8 with a zero point and once as symmetric int8, with ranges set from the
same calibration images by edgeopt's own range methods (edgeopt.quant.ranges, as both builds set them). Nothing else
is rounded (no output requantization, no Add or pooling quantization), so the agreement it prints is what the two
activation schemes alone allow: a practical ceiling for the real builds, which round more (more rounding adds noise;
it can agree more only by chance).

Ablations, to find where the disagreement comes from: `--round weights` or `--round activations` rounds one kind only;
`--keep-float LAYER ...` leaves those layers unrounded in both schemes; `--leave-one-out` prints the figures with each
layer left unrounded in turn; `--equalize ALPHA` first rescales the channels between the two convolutions of every
residual block (ReLU commutes with a positive scale) so that their activation ranges even out (SmoothQuant-style
migration strength ALPHA: 1 equalizes activation ranges, 0 the second convolution's input-channel weight ranges).

Run: .venv/bin/python benchmarks/int8_scheme_agreement.py [--model benchmarks.cifar_train:cifar_resnet_e40_factory]
     [--calibration-samples 512] [--method minmax|percentile|entropy|mse] [--round both|weights|activations]
     [--keep-float LAYER ...] [--leave-one-out] [--equalize ALPHA]
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.cifar_train import load_split  # noqa: E402
from edgeopt.models.resnet import BasicBlock  # noqa: E402
from edgeopt.quant.ranges import METHODS, tensor_range  # noqa: E402
from edgeopt.quant.statistics import TensorStats  # noqa: E402


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d (as attribute pair convN/bnN or in a Sequential)."""
    for child in module.children():
        fold_batchnorm(child)
    for conv, bn in (("conv1", "bn1"), ("conv2", "bn2")):
        if isinstance(getattr(module, conv, None), nn.Conv2d) and isinstance(getattr(module, bn, None), nn.BatchNorm2d):
            setattr(module, conv, fuse_conv_bn_eval(getattr(module, conv), getattr(module, bn)))
            setattr(module, bn, nn.Identity())
    if isinstance(module, nn.Sequential):
        for i in range(len(module) - 1):
            if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                module[i], module[i + 1] = fuse_conv_bn_eval(module[i], module[i + 1]), nn.Identity()
    return module


class RoundedInput(nn.Module):
    """A Conv2d or Linear whose weights are per-channel int8 and whose input is rounded to `scheme` (u8 or s8);
    `weights` / `activations` False leaves that part unrounded."""

    def __init__(self, layer: nn.Conv2d | nn.Linear, scheme: str, method: str, weights: bool = True,
                 activations: bool = True) -> None:
        super().__init__()
        self.layer, self.scheme, self.method, self.activations = layer, scheme, method, activations
        w = layer.weight.detach()
        scale = (w.abs().flatten(1).amax(1).clamp_min(1e-12) / 127).view((-1,) + (1,) * (w.ndim - 1))
        self.weight = torch.round(w / scale).clamp(-127, 127) * scale if weights else w
        self.range: tuple[float, float] | None = None  # set by calibrate()

    def calibrate(self, x: torch.Tensor) -> None:
        stats = TensorStats()
        stats.update(x.detach().numpy())
        self.range = tensor_range(stats, self.method, symmetric=self.scheme == "s8")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activations and self.range is None:
            self.calibrate(x)
        elif self.activations:
            lo, hi = self.range
            if self.scheme == "u8":
                lo, hi = min(lo, 0.0), max(hi, 0.0)
                scale = max(hi - lo, 1e-12) / 255
                zero = round(-lo / scale)
                x = ((torch.round(x / scale) + zero).clamp(0, 255) - zero) * scale
            else:
                scale = max(hi, 1e-12) / 127
                x = torch.round(x / scale).clamp(-128, 127) * scale
        if isinstance(self.layer, nn.Conv2d):
            c = self.layer
            return nn.functional.conv2d(x, self.weight, c.bias, c.stride, c.padding, c.dilation, c.groups)
        return nn.functional.linear(x, self.weight, self.layer.bias)


def layer_names(model: nn.Module) -> list[str]:
    """The qualified names of the Conv2d and Linear layers, in module order."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def rounded(model: nn.Module, scheme: str, method: str, keep_float: frozenset[str] = frozenset(),
            what: str = "both") -> nn.Module:
    """A copy of `model` with every Conv2d and Linear not in `keep_float` wrapped in RoundedInput (`what`: both,
    weights or activations)."""
    out = copy.deepcopy(model)
    layers = [(parent, f"{pname}.{name}" if pname else name, name, child) for pname, parent in out.named_modules()
              for name, child in parent.named_children() if isinstance(child, nn.Conv2d | nn.Linear)]  # fmt: skip
    for parent, full, name, child in layers:
        if full not in keep_float:
            setattr(parent, name, RoundedInput(child, scheme, method, weights=what != "activations",
                                               activations=what != "weights"))
    return out


def equalize_blocks(model: nn.Module, x_cal: torch.Tensor, alpha: float) -> nn.Module:
    """A copy of `model` (BatchNorm folded) with the channels between conv1 and conv2 of every BasicBlock rescaled:
    channel i of conv1 divided by s_i and input channel i of conv2 multiplied by it, s_i = a_i^alpha / w_i^(1-alpha)
    (a_i: the channel's largest activation over `x_cal`, w_i: conv2's largest weight on it). Same function in float."""
    out = copy.deepcopy(model)
    blocks = [m for m in out.modules() if isinstance(m, BasicBlock)]
    peaks: dict[int, torch.Tensor] = {}
    hooks = [b.conv2.register_forward_pre_hook(
        lambda _m, inp, k=k: peaks.__setitem__(k, inp[0].detach().amax((0, 2, 3)))) for k, b in enumerate(blocks)]
    with torch.no_grad():
        out(x_cal)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for k, b in enumerate(blocks):
            w = b.conv2.weight.abs().amax((0, 2, 3)).clamp_min(1e-8)
            s = peaks[k].clamp_min(1e-8) ** alpha / w ** (1 - alpha)
            s = s / s.max()
            b.conv1.weight /= s.view(-1, 1, 1, 1)
            if b.conv1.bias is not None:
                b.conv1.bias /= s
            b.conv2.weight *= s.view(1, -1, 1, 1)
    return out


def predictions(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([model(x[i : i + 500]).argmax(1) for i in range(0, len(x), 500)]).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="benchmarks.cifar_train:cifar_resnet_e40_factory", help="package.module:factory")
    ap.add_argument("--calibration-samples", type=int, default=512, help="first N CIFAR-10 training images")
    ap.add_argument("--method", choices=METHODS, default="minmax", help="range method of both schemes")
    ap.add_argument("--round", dest="what", choices=["both", "weights", "activations"], default="both",
                    help="what is rounded (default both)")
    ap.add_argument("--keep-float", nargs="+", default=[], metavar="LAYER", help="layers left unrounded")
    ap.add_argument("--leave-one-out", action="store_true", help="also: each layer left unrounded in turn")
    ap.add_argument("--equalize", type=float, default=None, metavar="ALPHA",
                    help="rescale the channels inside each residual block first (0..1)")
    args = ap.parse_args()
    module, factory = args.model.split(":")
    model = fold_batchnorm(getattr(importlib.import_module(module), factory)().eval())
    names = layer_names(model)
    unknown = sorted(set(args.keep_float) - set(names))
    if unknown:
        ap.error(f"--keep-float: no layer {', '.join(unknown)}; the layers are {', '.join(names)}")
    x_test, y_test = (torch.from_numpy(a) for a in load_split("test"))
    x_cal = torch.from_numpy(load_split("train")[0][: args.calibration_samples])
    ref = predictions(model, x_test)
    if args.equalize is not None:
        model = equalize_blocks(model, x_cal, args.equalize)

    def figures(keep: frozenset[str]) -> dict[str, float]:
        preds = {}
        for scheme in ("u8", "s8"):
            net = rounded(model, scheme, args.method, keep, args.what)
            with torch.no_grad():
                net(x_cal)  # one pass over the calibration images sets every range
            preds[scheme] = predictions(net, x_test)
        return {
            **{f"top1_{s}": float(np.mean(p == y_test.numpy())) for s, p in preds.items()},
            **{f"agreement_{s}_vs_fp32": float(np.mean(p == ref)) for s, p in preds.items()},
            "agreement_u8_vs_s8": float(np.mean(preds["u8"] == preds["s8"])),
        }

    keep = frozenset(args.keep_float)
    out = {
        "model": args.model, "method": args.method, "calibration_samples": args.calibration_samples,
        "round": args.what, "keep_float": sorted(keep), "equalize": args.equalize,
        "top1_fp32": float(np.mean(ref == y_test.numpy())), **figures(keep),
    }
    if args.leave_one_out:
        out["leave_one_out"] = {name: figures(keep | {name}) for name in names if name not in keep}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
