"""PyTorch model artifacts: an nn.Module with example inputs, loaded safely from .pt2 files or factories."""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import pickletools
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.artifacts.base import Artifact, ArtifactKind, PassRecord, TensorSpec
from edgeopt.errors import ConfigError, ModelFileError


def module_sha256(module: Any, input_specs: list[TensorSpec]) -> str:
    """Content hash of a module: its class, its printed structure, every parameter/buffer and the input specs."""
    h = hashlib.sha256()
    h.update(f"{type(module).__module__}.{type(module).__qualname__}\n".encode())
    h.update(repr(module).encode())
    for spec in input_specs:
        h.update(repr(spec).encode())
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        arr = tensor.detach().cpu().contiguous().numpy()
        h.update(str(arr.dtype).encode() + str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _torch() -> Any:
    import torch

    return torch


@dataclass
class TorchModel(Artifact):
    """A PyTorch module in eval mode and the specs of its inputs (names, shapes with a dynamic batch)."""

    module: Any = field(default=None, repr=False)
    inputs: tuple[TensorSpec, ...] = ()

    def __post_init__(self) -> None:
        self.kind = ArtifactKind.TORCH

    @classmethod
    def from_module(
        cls,
        module: Any,
        input_specs: list[TensorSpec],
        path: Path | None = None,
        provenance: tuple[PassRecord, ...] = (),
    ) -> TorchModel:
        """Wrap a module; the module is put in eval mode (never modified otherwise)."""
        try:
            module.eval()
        except NotImplementedError:  # modules from torch.export are already in inference form
            pass
        return cls(
            path=path,
            sha256=module_sha256(module, input_specs),
            provenance=provenance,
            module=module,
            inputs=tuple(input_specs),
        )

    def input_specs(self) -> list[TensorSpec]:
        return list(self.inputs)

    def output_specs(self) -> list[TensorSpec]:
        return []

    def parameter_count(self) -> int:
        return int(sum(p.numel() for p in self.module.parameters()))

    def op_histogram(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for m in self.module.modules():
            if len(list(m.children())) == 0:
                counts[type(m).__name__] = counts.get(type(m).__name__, 0) + 1
        return dict(sorted(counts.items()))

    def size_bytes(self) -> int:
        return int(sum(t.numel() * t.element_size() for t in self.module.state_dict().values()))

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the module eagerly on numpy inputs (in input-spec order)."""
        torch = _torch()
        args = [torch.from_numpy(np.ascontiguousarray(inputs[s.name])) for s in self.inputs]
        with torch.inference_mode():
            out = self.module(*args)
        if isinstance(out, torch.Tensor):
            out = (out,)
        elif isinstance(out, dict):
            out = tuple(out.values())
        return [o.detach().numpy() for o in out]


# Opcodes through which a pickle fetches or calls arbitrary objects; a pickle without them holds plain data only.
_CODE_OPCODES = frozenset(
    {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "REDUCE", "BUILD", "EXT1", "EXT2", "EXT4"}
)


def _runs_code(data: bytes) -> bool:
    """True when `data` starts with a pickle of any protocol (0 and 1 have no header byte) that fetches objects."""
    try:
        for opcode, _, _ in pickletools.genops(data):
            if opcode.name in _CODE_OPCODES:
                return True
            if opcode.name == "STOP":
                return False
    except Exception:  # noqa: BLE001 - not a pickle: raw bytes, JSON, text
        return False
    return False


def _raw_tensor_files(zf: zipfile.ZipFile) -> set[str]:
    """Members the archive's weight/constant configs declare as raw tensor bytes (read, never unpickled).

    Raw float data may start with any byte (0x80 included), so these are exempt from the pickle check; a path that
    any entry marks as pickled stays checked.
    """
    raw: set[str] = set()
    pickled: set[str] = set()
    for name in zf.namelist():
        if not name.endswith("_config.json"):
            continue
        try:
            entries = json.loads(zf.read(name)).get("config")
        except (ValueError, AttributeError):
            continue
        folder = name.rpartition("/")[0]
        for meta in entries.values() if isinstance(entries, dict) else ():
            if not isinstance(meta, dict):
                continue
            member = f"{folder}/{meta.get('path_name')}" if folder else str(meta.get("path_name"))
            is_raw = meta.get("use_pickle") is False and meta.get("tensor_meta") is not None
            (raw if is_raw else pickled).add(member)
    return raw - pickled


def _check_pickles_safe(path: Path) -> None:
    """Every pickle inside a .pt2 archive must load with weights_only=True; else refuse the file."""
    torch = _torch()
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ModelFileError(f"{path} is not a torch.export .pt2 archive", "save it with torch.export.save") from exc
    with zf:
        raw = _raw_tensor_files(zf)
        for info in zf.infolist():
            if info.filename in raw or info.is_dir():
                continue
            data = zf.read(info)
            if data[:2] == b"PK" or _runs_code(data):
                try:
                    torch.load(io.BytesIO(data), weights_only=True)
                except Exception as exc:
                    raise ModelFileError(
                        f"{path} contains arbitrary pickled objects ({info.filename}); refusing to load it",
                        "export the model with torch.export.save from a trusted environment, or pass "
                        "package.module:factory",
                    ) from exc


def load_pt2(path: Path, input_specs: list[TensorSpec] | None) -> TorchModel:
    """Load a torch.export .pt2 file after checking that it holds no arbitrary pickles."""
    torch = _torch()
    _check_pickles_safe(path)
    extra = {"edgeopt/inputs.json": ""}  # input specs an edgeopt torch pass stored (keeps the source's input names)
    try:
        ep = torch.export.load(str(path), extra_files=extra)
    except Exception as exc:
        raise ModelFileError(f"cannot load {path} as a torch.export program ({exc})", "re-export it") from exc
    module = ep.module()
    stored_specs = json.loads(extra["edgeopt/inputs.json"] or "[]")
    stored = [TensorSpec(d["name"], tuple(d["shape"]), d["dtype"]) for d in stored_specs]
    specs = input_specs or stored or _specs_from_exported(ep)
    return TorchModel.from_module(module, specs, path=path)


def _specs_from_exported(ep: Any) -> list[TensorSpec]:
    specs = []
    args = ep.example_inputs[0] if ep.example_inputs else ()
    names = [s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    for name, t in zip(names, args, strict=False):
        shape: tuple[int | str | None, ...] = ("batch", *t.shape[1:]) if t.dim() > 0 else ()
        specs.append(TensorSpec(name, shape, str(t.dtype).replace("torch.", "")))
    return specs


def load_pt(path: Path) -> None:
    """A .pt file: only safe tensor data may be in it, and it has no architecture; explain what to pass instead."""
    torch = _torch()
    try:
        torch.load(str(path), weights_only=True)
    except Exception as exc:
        raise ModelFileError(
            f"{path} contains arbitrary pickled objects and cannot be loaded safely (weights_only=True)",
            "save the model with torch.export.save as .pt2, or pass package.module:factory",
        ) from exc
    raise ModelFileError(
        f"{path} holds only weights (a state dict), not a network",
        "pass package.module:factory that builds the network and loads these weights, or a torch.export .pt2 file",
    )


def load_factory(spec: str, input_specs: list[TensorSpec] | None) -> TorchModel:
    """Import `package.module:factory`, call it, and wrap the returned nn.Module."""
    torch = _torch()
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise ModelFileError(f"'{spec}' is not of the form package.module:factory", "e.g. mypkg.models:build_net")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ModelFileError(f"cannot import module '{mod_name}' ({exc})", "check the name and PYTHONPATH") from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ModelFileError(f"'{mod_name}' has no callable '{attr}'", "name a function that returns an nn.Module")
    net = factory()
    if not isinstance(net, torch.nn.Module):
        raise ModelFileError(f"'{spec}' returned {type(net).__name__}, not an nn.Module", "return an nn.Module")
    specs = input_specs or list(getattr(net, "edgeopt_inputs", []) or [])
    if not specs:
        raise ConfigError(
            f"the input shape of '{spec}' is unknown",
            "pass --input-shape NAME:1,3,224,224 (or give the module an `edgeopt_inputs` list)",
        )
    return TorchModel.from_module(net, specs)
