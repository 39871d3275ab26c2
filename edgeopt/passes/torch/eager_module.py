"""The .pt2 format of torch passes: a torch.export program plus what it takes to rebuild a trainable nn.Module.

A module loaded back from a .pt2 (`ExportedProgram.module()`) runs, exports and times fine, but it cannot be trained
(`train()` raises: BatchNorm stays frozen in inference form) and Torch-Pruning cannot find its layers. So a torch pass
that changes a module (prune, distill, finetune) saves, beside the exported program, two small JSON files in the
archive's `extra/` folder:

- `edgeopt/inputs.json`: the input specs (names included), so the artifact keeps the source's input names;
- `edgeopt/eager.json`: the shape attributes of every layer (in/out channels, groups, features) and the hash of the
  pipeline source they apply to.

`trainable_module` rebuilds an eager module from that: a deep copy of the pipeline source (`ctx.shared["source"]`),
each layer's shape attributes set, every parameter and buffer replaced by the exported weights; it checks the rebuilt
module's outputs against the exported program before handing it out.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.artifacts.base import TensorSpec
from edgeopt.artifacts.torch_model import TorchModel
from edgeopt.errors import ModelFileError
from edgeopt.fileio import write_bytes_atomic
from edgeopt.passes.base import PassContext

INPUTS_FILE = "edgeopt/inputs.json"
EAGER_FILE = "edgeopt/eager.json"
FORMAT = "edgeopt.eager/1"
# Layer attributes that structured pruning changes; everything else about a layer stays as in the source.
SHAPE_ATTRS = ("in_channels", "out_channels", "groups", "num_features", "in_features", "out_features")


def layer_shapes(module: Any) -> dict[str, dict[str, int]]:
    """The shape attributes of every named layer, e.g. {"layers.0.conv1": {"in_channels": 16, ...}}."""
    out: dict[str, dict[str, int]] = {}
    for name, m in module.named_modules():
        attrs = {a: int(getattr(m, a)) for a in SHAPE_ATTRS if isinstance(getattr(m, a, None), int)}
        if attrs:
            out[name] = attrs
    return out


def example_args(specs: list[TensorSpec], batch: int, seed: int) -> tuple[Any, ...]:
    """Deterministic example tensors for the specs (what torch.export stores as sample inputs)."""
    import torch

    rng = np.random.default_rng(seed)
    return tuple(torch.from_numpy(rng.standard_normal(s.concrete_shape(batch)).astype(s.dtype)) for s in specs)


def save_module(module: Any, specs: list[TensorSpec], path: Path, base_sha256: str, seed: int = 0) -> None:
    """torch.export `module` (eval mode, dynamic batch) and write the .pt2 with its rebuild info, byte-deterministic.

    The archive is written from memory: torch names the archive's root folder after the file, and the pipeline hands
    passes a randomly named temporary path, which would otherwise change the bytes from run to run.
    """
    import torch

    module.eval()
    batch = torch.export.Dim("batch", min=1, max=65536)
    with torch.no_grad():
        ep = torch.export.export(module, example_args(specs, 2, seed), dynamic_shapes=tuple({0: batch} for _ in specs))
    eager: dict[str, Any] = {"format": FORMAT, "base_sha256": base_sha256, "layers": layer_shapes(module)}
    removed = [n for n, m in module.named_modules() if n and isinstance(m, torch.nn.Identity)]
    if removed:  # blocks a pass replaced by identities (depth pruning): the rebuilt module must drop them too
        eager["identity"] = removed
    extra = {
        INPUTS_FILE: json.dumps([s.to_dict() for s in specs], sort_keys=True),
        EAGER_FILE: json.dumps(eager, sort_keys=True),
    }
    buf = io.BytesIO()
    torch.export.save(ep, buf, extra_files=extra)
    write_bytes_atomic(path, buf.getvalue())


def read_extra(path: Path) -> dict[str, Any]:
    """The edgeopt JSON files inside a .pt2 archive (missing ones are absent from the dict)."""
    import torch

    files = {INPUTS_FILE: "", EAGER_FILE: ""}
    torch.export.load(str(path), extra_files=files)
    return {k: json.loads(v) for k, v in files.items() if v}


def is_exported(model: TorchModel) -> bool:
    """True when the artifact's module came from a .pt2 (an ExportedProgram's module, not trainable)."""
    return model.path is not None and model.path.suffix == ".pt2"


def base_sha256(model: TorchModel) -> str:
    """The hash of the eager module a torch pass output is rebuilt from: the model itself, or its recorded base."""
    if not is_exported(model):
        return model.sha256
    eager = read_extra(Path(str(model.path))).get(EAGER_FILE)
    return str(eager["base_sha256"]) if eager else model.sha256


def _set_tensor(root: Any, name: str, value: Any) -> None:
    """Replace parameter or buffer `name` of `root` by `value`, keeping its kind (shapes may differ)."""
    import torch

    owner_name, _, attr = name.rpartition(".")
    owner = root.get_submodule(owner_name) if owner_name else root
    if attr in owner._parameters:
        owner._parameters[attr] = torch.nn.Parameter(value.detach().clone(), requires_grad=True)
    elif attr in owner._buffers:
        owner._buffers[attr] = value.detach().clone()
    else:
        raise KeyError(name)


def source_module(ctx: PassContext) -> Any:
    """The pipeline source's eager module (ctx.shared["source"]), or None when there is none."""
    src = ctx.shared.get("source")
    if isinstance(src, TorchModel) and not is_exported(src):
        return src.module
    return None


def eager_problems(name: str, ctx: PassContext) -> list[str]:
    """A pipeline source that no torch pass can prune or train (a user's .pt2 has no eager form), as a problem."""
    src = ctx.shared.get("source")
    if isinstance(src, TorchModel) and is_exported(src) and EAGER_FILE not in read_extra(Path(str(src.path))):
        return [
            f"pass '{name}' needs the model as an nn.Module (package.module:factory or an in-memory module); "
            f"{Path(str(src.path)).name} is a torch.export program, which cannot be pruned or trained"
        ]
    return []


def trainable_module(model: TorchModel, ctx: PassContext) -> Any:
    """A fresh eager nn.Module computing what `model` computes, safe to prune or train (the input is never touched)."""
    if not is_exported(model):
        return copy.deepcopy(model.module)
    path = Path(str(model.path))
    eager = read_extra(path).get(EAGER_FILE)
    base = source_module(ctx)
    if eager is None or base is None:
        why = "it was not written by an edgeopt torch pass" if eager is None else "the pipeline source is not eager"
        raise ModelFileError(
            f"{path.name} is a torch.export program and cannot be pruned or trained ({why})",
            "pass the model as package.module:factory or an nn.Module, so that its eager form is available",
        )
    src = ctx.shared["source"]
    if eager.get("base_sha256") != src.sha256:
        raise ModelFileError(
            f"{path.name} was derived from another model (sha256 {str(eager.get('base_sha256'))[:12]}…) "
            f"than this pipeline's source ({src.sha256[:12]}…)",
            "run the chain from the model it was derived from",
        )
    import torch

    rebuilt = copy.deepcopy(base)
    for name in eager.get("identity", []):
        parent, _, child = name.rpartition(".")
        setattr(rebuilt.get_submodule(parent) if parent else rebuilt, child, torch.nn.Identity())
    for name, attrs in sorted(eager["layers"].items()):
        layer = rebuilt.get_submodule(name) if name else rebuilt
        for attr, value in attrs.items():
            setattr(layer, attr, value)
    ep = torch.export.load(str(path))
    for name, tensor in {**ep.state_dict, **ep.constants}.items():
        try:
            _set_tensor(rebuilt, name, tensor)
        except (KeyError, AttributeError) as exc:
            raise ModelFileError(
                f"{path.name} holds tensor '{name}', which the source module does not have",
                "run the chain from the model it was derived from",
            ) from exc
    _check_rebuilt(rebuilt, model)
    return rebuilt


def _check_rebuilt(rebuilt: Any, model: TorchModel) -> None:
    """The rebuilt module must compute what the exported program computes."""
    import torch

    args = example_args(model.input_specs(), 2, 0)
    rebuilt.eval()
    with torch.no_grad():
        want = torch.utils._pytree.tree_leaves(model.module(*args))
        got = torch.utils._pytree.tree_leaves(rebuilt(*args))
    diff = float("inf")
    if len(want) == len(got):
        diff = max((float((w - g).abs().max()) for w, g in zip(want, got, strict=True)), default=0.0)
    if diff > 1e-4 * max([1.0, *(float(w.abs().max()) for w in want)]):
        raise ModelFileError(
            f"could not rebuild an eager module from {model.path} (outputs differ by {diff:.3g})",
            "report this model to the edgeopt developers",
        )
