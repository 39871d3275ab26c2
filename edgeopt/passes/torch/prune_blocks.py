"""Depth pruning for the prune pass: remove whole blocks whose output has the shape of their input (residual blocks),
the ones that change their input least on the user's data first.

A residual block computes x + f(x); where f(x) is small next to x the block can go and the network still computes
nearly the same thing, which distillation then recovers. Removing a block saves all of its operators, not only their
channels: on a narrow network whose layers are already at the runtime's channel block (16 on AVX-512), that is the
only structured cut left.
"""

from __future__ import annotations

import copy
from typing import Any

from edgeopt.errors import ConfigError
from edgeopt.passes.torch import prune_checks as checks


def candidate_blocks(module: Any, args: tuple[Any, ...], ignored: set[str]) -> list[str]:
    """Names of removable blocks, in module order: containers held by an nn.Sequential that hold a Conv or Linear
    layer and return a tensor of their input's shape. Innermost only (a stage made of such blocks is not itself one);
    none that is, or holds, an ignored layer."""
    import torch

    shaped: set[str] = set()
    hooks = []
    for parent_name, parent in module.named_modules():
        if not isinstance(parent, torch.nn.Sequential):
            continue
        for child_name, child in parent.named_children():
            name = f"{parent_name}.{child_name}" if parent_name else child_name
            if not any(True for _ in child.children()):
                continue  # a single layer, not a block
            if not any(isinstance(m, checks.PRUNABLE) for m in child.modules()):
                continue

            def hook(_m: Any, inputs: tuple[Any, ...], output: Any, name: str = name) -> None:
                if len(inputs) == 1 and torch.is_tensor(output) and inputs[0].shape == output.shape:
                    shaped.add(name)

            hooks.append(child.register_forward_hook(hook))
    try:
        with torch.no_grad():
            module.eval()(*args)
    finally:
        for h in hooks:
            h.remove()
    inner = [n for n in shaped if not any(o != n and o.startswith(n + ".") for o in shaped)]
    free = [n for n in inner if not any(i == n or i.startswith(n + ".") for i in ignored)]
    order = {n: i for i, (n, _) in enumerate(module.named_modules())}
    return sorted(free, key=order.__getitem__)


def block_changes(module: Any, names: list[str], batches: list[tuple[Any, ...]]) -> dict[str, float]:
    """How much each block changes its input on the data: mean over samples of |out - in| / |in|."""
    import torch

    sums = dict.fromkeys(names, 0.0)
    count = 0
    layers = dict(module.named_modules())
    hooks = []
    for name in names:

        def hook(_m: Any, inputs: tuple[Any, ...], output: Any, name: str = name) -> None:
            x, y = inputs[0].flatten(1), output.flatten(1)
            sums[name] += float(((y - x).norm(dim=1) / x.norm(dim=1).clamp_min(1e-12)).sum())

        hooks.append(layers[name].register_forward_hook(hook))
    try:
        with torch.no_grad():
            for x in batches:
                module.eval()(*x)
                count += int(x[0].shape[0])
    finally:
        for h in hooks:
            h.remove()
    return {n: s / max(count, 1) for n, s in sums.items()}


def drop_blocks(
    module: Any, args: tuple[Any, ...], count: int, ignored: set[str], batches: list[tuple[Any, ...]], macs: int
) -> tuple[Any, str]:
    """A copy of `module` (`macs` MACs) without the `count` blocks that change their input least on `batches`, and a
    note."""
    import torch

    names = candidate_blocks(module, args, ignored)
    if count > len(names):
        found = ", ".join(names) if names else "none"
        raise ConfigError(
            f"cannot remove {count} blocks: the model has {len(names)} removable blocks (blocks in an nn.Sequential "
            f"that return their input's shape, e.g. residual blocks; found: {found})",
            f"set prune blocks to at most {len(names)}, or 0 for channel pruning only",
        )
    changes = block_changes(module, names, batches)
    chosen = sorted(names, key=lambda n: (changes[n], n))[:count]
    work = copy.deepcopy(module).eval()
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = work.get_submodule(parent_name) if parent_name else work
        setattr(parent, child, torch.nn.Identity())
    after = sum(checks.layer_macs(work, args).values())
    ranked = ", ".join(f"{n} {changes[n]:.0%}" for n in sorted(names, key=lambda n: (changes[n], n)))
    note = (
        f"depth pruning: removed {count} of {len(names)} blocks ({', '.join(chosen)}), those that change their input "
        f"least on the data (mean |out - in| / |in|: {ranked}); MACs {macs / 1e6:.2f}M -> {after / 1e6:.2f}M"
    )
    return work, note
