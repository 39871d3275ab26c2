"""What the prune pass checks around Torch-Pruning: the classifier, layer names, graph cuts, layer costs, and that a
pruned model computes what the original computes with the same channels removed."""

from __future__ import annotations

import copy
import fnmatch
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from edgeopt.errors import ConfigError, ModelFileError

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
# Autograd nodes Torch-Pruning treats as element-wise, known to keep channels in place (anything else is suspect).
CHANNEL_SAFE = (
    "add",
    "sub",
    "mul",
    "div",
    "relu",
    "hardtanh",
    "sigmoid",
    "silu",
    "gelu",
    "tanh",
    "hardswish",
    "hardsigmoid",
    "leakyrelu",
    "elu",
    "clamp",
    "neg",
    "mean",
    "maxpool",
    "avgpool",
    "adaptiveavgpool",
    "adaptivemaxpool",
    "nativedropout",
    "mish",
    "softplus",
    "upsample",
    "constantpadnd",
    "reflectionpad",
    "replicationpad",
    "clone",
)


def executed_layers(module: nn.Module, args: tuple[Any, ...]) -> tuple[list[str], Any]:
    """Names of the Conv/Linear layers a forward pass runs, in order, and the forward's output."""
    names = {m: n for n, m in module.named_modules()}
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(names[m])) for m in names if isinstance(m, PRUNABLE)]
    try:
        with torch.no_grad():
            out = module(*args)
    finally:
        for h in hooks:
            h.remove()
    return order, out


def classifier_layers(module: nn.Module, args: tuple[Any, ...]) -> list[str]:
    """The final classifier: the last Conv/Linear the forward pass runs (its outputs are the model's classes)."""
    order, _ = executed_layers(module, args)
    return order[-1:]


def resolve_excludes(module: nn.Module, patterns: list[str]) -> list[str]:
    """Layer names matched by name globs ("stem.*", "layers.0.0.conv1") or type names ("Conv2d"); typos are errors."""
    named = [(n, m) for n, m in module.named_modules() if n]
    out: set[str] = set()
    for pat in patterns:
        hits = [n for n, m in named if fnmatch.fnmatchcase(n, pat) or type(m).__name__ == pat]
        if not hits:
            sample = ", ".join(n for n, m in named if isinstance(m, PRUNABLE))[:200]
            raise ConfigError(
                f"prune exclude pattern '{pat}' matches no layer name or type",
                f"layer names look like: {sample}",
            )
        out.update(hits)
    return sorted(out)


class _CutFinder(TorchFunctionMode):
    """Finds the first op whose inputs need gradients but whose outputs do not (it cuts the autograd graph)."""

    def __init__(self) -> None:
        super().__init__()
        self.cut: str | None = None

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if self.cut is None:
            ins = [t for t in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
            outs = [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
            if outs and any(t.requires_grad for t in ins) and not any(t.requires_grad for t in outs):
                self.cut = getattr(func, "__qualname__", None) or str(func)
        return out


def check_traceable(module: nn.Module, args: tuple[Any, ...], graph_layers: set[nn.Module]) -> None:
    """Every Conv/Linear the forward runs must be reachable from the output through autograd, which is how
    Torch-Pruning finds dependencies; otherwise name the op that cuts the graph."""
    order, _ = executed_layers(module, args)
    layers = dict(module.named_modules())
    missing = [n for n in order if layers[n] not in graph_layers]
    if not missing:
        return
    finder = _CutFinder()
    with torch.enable_grad(), finder:
        module(*args)
    op = f"op '{finder.cut}'" if finder.cut else "an op that is not differentiable"
    raise ModelFileError(
        f"Torch-Pruning cannot trace this model: {op} cuts the autograd graph, so layer '{missing[0]}' cannot be "
        "followed to the output",
        "remove the detach/no_grad/integer op from forward(), or exclude the layers before it",
    )


def suspect_ops(graph: Any) -> list[str]:
    """Autograd ops Torch-Pruning handled as element-wise without knowing that they keep channels in place."""
    names = set()
    for node in graph.module2node.values():
        op = getattr(node.module, "_grad_fn", None)
        if type(node.module).__name__ == "_ElementWiseOp" and isinstance(op, str):
            base = op.lower().replace("backward", "").rstrip("0123456789")
            if base != "t" and not base.startswith(CHANNEL_SAFE):  # t: a Linear's weight transpose
                names.add(op)
    return sorted(names)


def _mask_inputs(layer: nn.Module, idxs: list[int]) -> None:
    """Zero the weights reading input channels `idxs` (what removing those channels does to this layer)."""
    w = layer.weight
    if isinstance(layer, nn.Linear):
        w[:, idxs] = 0
        return
    per_in, per_out = w.shape[1], w.shape[0] // layer.groups
    for k in idxs:
        g, j = divmod(k, per_in)
        w[g * per_out : (g + 1) * per_out, j] = 0


def check_equivalent(
    original: nn.Module, pruned: nn.Module, removed_inputs: dict[str, list[int]], args: tuple[Any, ...], graph: Any
) -> float:
    """The pruned model must compute what the original computes with the removed channels' consumers zeroed.

    Torch-Pruning handles ops it does not know as element-wise; if one of them moves channels (a transpose, a channel
    shuffle, a matmul over channels), the two differ, and the error names those ops. Returns the max abs difference.
    """
    masked = copy.deepcopy(original).eval()
    layers = dict(masked.named_modules())
    with torch.no_grad():
        for name, idxs in sorted(removed_inputs.items()):
            _mask_inputs(layers[name], idxs)
        want = torch.utils._pytree.tree_leaves(masked(*args))
        got = torch.utils._pytree.tree_leaves(pruned.eval()(*args))
    shapes_ok = len(want) == len(got) and all(w.shape == g.shape for w, g in zip(want, got, strict=False))
    diff = max((float((w - g).abs().max()) for w, g in zip(want, got, strict=False)), default=0.0)
    scale = max([1.0, *(float(w.abs().max()) for w in want)])
    if not shapes_ok or diff > 1e-3 * scale:
        ops = suspect_ops(graph)
        named = (
            f"ops it handled as channel-preserving without knowing them: {', '.join(ops)}"
            if ops
            else ("no unknown op was found")
        )
        what = "its output shapes changed" if not shapes_ok else f"max abs diff {diff:.3g}"
        raise ModelFileError(
            f"Torch-Pruning cannot follow this model: the pruned model does not compute what the original computes "
            f"with the same channels removed ({what}); {named}",
            "exclude the layers that feed these ops (prune exclude), or prune a model without them",
        )
    return diff


def layer_macs(module: nn.Module, args: tuple[Any, ...]) -> dict[str, int]:
    """Multiply-accumulates per Conv/Linear layer for one forward pass of `args` (per sample of the batch)."""
    names = {m: n for n, m in module.named_modules()}
    batch = int(args[0].shape[0]) if args and isinstance(args[0], torch.Tensor) and args[0].dim() else 1
    cost: dict[str, int] = {}

    def hook(m: nn.Module, inputs: Any, out: torch.Tensor) -> None:
        # Each output element of a Conv or Linear costs one MAC per weight of its filter row.
        cost[names[m]] = cost.get(names[m], 0) + int(out.numel() // batch) * int(m.weight[0].numel())

    hooks = [m.register_forward_hook(hook) for m in names if isinstance(m, PRUNABLE)]
    try:
        with torch.no_grad():
            module(*args)
    finally:
        for h in hooks:
            h.remove()
    return cost


def blocking_layer(
    pruned: nn.Module, args: tuple[Any, ...], base_total: int, ignored: dict[str, str], round_to: int | None
) -> str:
    """The costliest layer that cannot shrink further at the maximum ratio, and why (for unreachable targets)."""
    costs = layer_macs(pruned, args)
    layers = dict(pruned.named_modules())
    floor = round_to or 1
    candidates = []
    for name, cost in costs.items():
        layer = layers[name]
        out_ch = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
        if name in ignored:
            why = ignored[name]
        elif out_ch <= floor:
            why = f"already down to {out_ch} output channels (round_to {floor})"
        else:
            why = "held by the maximum pruning ratio"
        candidates.append((cost, name, type(layer).__name__, why))
    cost, name, kind, why = max(candidates)
    return f"layer '{name}' ({kind}, {why}) alone costs {cost / base_total:.0%} of the original MACs"
