"""prune: structured pruning that follows dependencies, MAC and latency budgets, exclusions, clear failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from edgeopt.artifacts.base import TensorSpec
from edgeopt.artifacts.torch_model import TorchModel, load_pt2
from edgeopt.data import load_data
from edgeopt.errors import ConfigError, ModelFileError
from edgeopt.models.mobilenet_v2 import mobilenet_v2
from edgeopt.models.resnet import cifar_resnet
from edgeopt.passes.base import PassContext
from edgeopt.passes.torch.eager_module import trainable_module
from edgeopt.passes.torch.prune import Prune
from edgeopt.passes.torch.prune_checks import layer_macs


def _spec(size: int = 16) -> list[TensorSpec]:
    return [TensorSpec("input", ("batch", 3, size, size), "float32")]


def seeded(build: Any) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build().eval()


class ConcatNet(nn.Module):
    """Two branches concatenated on channels, then a conv and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.a = nn.Conv2d(16, 16, 3, padding=1)
        self.b = nn.Conv2d(16, 16, 1)
        self.mix = nn.Conv2d(32, 32, 3, padding=1)
        self.fc = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(self.mix(torch.cat([self.a(x), self.b(x)], 1)))
        return self.fc(x.mean((2, 3)))


class GroupedNet(nn.Module):
    """A grouped conv (4 groups) between two plain ones."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.bn1 = nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.c2, self.bn2 = nn.Conv2d(32, 32, 3, padding=1, groups=4), nn.BatchNorm2d(32)
        self.c3 = nn.Conv2d(32, 32, 1)
        self.fc = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.c1(x)))
        x = torch.relu(self.bn2(self.c2(x)))
        return self.fc(self.c3(x).mean((2, 3)))


class ShuffleNet(nn.Module):
    """A channel shuffle (view + transpose): Torch-Pruning treats the transpose as element-wise."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.fc = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.c1(x)
        b, c, h, w = x.shape
        x = x.view(b, 4, c // 4, h, w).transpose(1, 2).reshape(b, c, h, w)
        return self.fc(self.c2(x).mean((2, 3)))


class DetachNet(nn.Module):
    """A detach in forward cuts the autograd graph Torch-Pruning follows."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.fc = nn.Conv2d(3, 16, 3, padding=1), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.c1(x).detach().mean((2, 3)))


def run_prune(
    module: nn.Module, config: dict[str, Any], tmp_path: Path, specs: list[TensorSpec] | None = None, **ctx_kw: Any
) -> tuple[TorchModel, list[str], PassContext]:
    """Run the prune pass on `module`; return the reloaded .pt2 artifact, the notes and the context. The tiny test
    nets round kept channels to 8 unless a test says otherwise (the default, 'auto', is 16 on an AVX-512 CPU)."""
    config = {"round_to": 8, **config}
    art = TorchModel.from_module(module, specs or _spec())
    ctx = PassContext(work_dir=tmp_path, shared={"source": art}, **ctx_kw)
    out = tmp_path / "pruned.pt2"
    Prune(config).run(art, ctx, out)
    return load_pt2(out, None), ctx.shared.get("notes", []), ctx


def _convs(module: nn.Module) -> dict[str, nn.Conv2d]:
    return {n: m for n, m in module.named_modules() if isinstance(m, nn.Conv2d)}


def test_resnet_ratio_follows_residuals(tmp_path: Path) -> None:
    net = seeded(lambda: cifar_resnet(depth=8, width=16, num_classes=4))
    out, notes, ctx = run_prune(net, {"ratio": 0.5}, tmp_path)
    assert out.input_specs()[0].name == "input"  # the .pt2 keeps the source's input names
    pruned = trainable_module(out, ctx)
    convs = _convs(pruned)
    assert all(c.out_channels % 8 == 0 for c in convs.values())
    stage = [convs[n].out_channels for n in ("stem.0", "layers.0.0.conv2")]
    assert stage[0] == stage[1] < 16  # coupled through the residual add
    assert pruned.fc.out_features == 4 and pruned.fc.in_features == convs["layers.2.0.conv2"].out_channels
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert out.module(x).shape == (3, 4)
        torch.testing.assert_close(pruned(x), out.module(x), rtol=1e-5, atol=1e-5)
    assert "structured pruning" in notes[-1] and "excluded: fc" in notes[-1]
    pruned.train()  # the rebuilt module trains (an ExportedProgram's module would raise)


def test_mac_budget_is_met(tmp_path: Path) -> None:
    net = seeded(lambda: cifar_resnet(depth=8, width=32, num_classes=4))
    out, notes, ctx = run_prune(net, {"macs": 0.5}, tmp_path)
    args = (torch.randn(1, 3, 16, 16),)
    kept = sum(layer_macs(trainable_module(out, ctx), args).values()) / sum(layer_macs(net, args).values())
    assert 0.3 < kept <= 0.5
    assert any(n.startswith("MAC budget 50%") for n in notes)


@pytest.mark.parametrize(
    ("build", "size"),
    [(ConcatNet, 16), (GroupedNet, 16), (lambda: mobilenet_v2(num_classes=4, width_mult=0.5), 32)],
    ids=["concat", "grouped", "depthwise"],
)
def test_concat_grouped_and_depthwise(build: Any, size: int, tmp_path: Path) -> None:
    net = seeded(build)
    out, _, ctx = run_prune(net, {"ratio": 0.5}, tmp_path, _spec(size))
    pruned = trainable_module(out, ctx)
    args = (torch.randn(2, 3, size, size),)
    assert sum(layer_macs(pruned, args).values()) < 0.6 * sum(layer_macs(net, args).values())
    for conv in _convs(pruned).values():
        assert conv.in_channels % conv.groups == 0 and conv.out_channels % conv.groups == 0
    with torch.no_grad():
        assert pruned(*args).shape == (2, 4)


def test_exclude_by_name_and_type(tmp_path: Path) -> None:
    net = seeded(lambda: cifar_resnet(depth=8, width=16, num_classes=4))
    out, _, ctx = run_prune(net, {"ratio": 0.5, "exclude": ["layers.1.*"]}, tmp_path)
    convs = _convs(trainable_module(out, ctx))
    assert convs["layers.1.0.conv1"].out_channels == 32 and convs["layers.2.0.conv1"].out_channels < 64
    with pytest.raises(ConfigError, match="exclude pattern 'layer9.*' matches no layer"):
        run_prune(net, {"ratio": 0.5, "exclude": ["layer9.*"]}, tmp_path)
    with pytest.raises(ConfigError, match="removed no channel"):
        run_prune(net, {"ratio": 0.5, "exclude": ["Conv2d"]}, tmp_path)


def test_unreachable_budget_names_the_blocking_layer(tmp_path: Path) -> None:
    net = seeded(lambda: cifar_resnet(depth=8, width=16, num_classes=4))
    with pytest.raises(ConfigError, match=r"MAC budget of 5% cannot be reached.*layer '[\w.]+' \(Conv2d, "):
        run_prune(net, {"macs": 0.05, "exclude": ["stem.0"]}, tmp_path)


@pytest.mark.parametrize(
    ("build", "op"),
    [(DetachNet, "op 'TensorBase.detach' cuts the autograd graph"), (ShuffleNet, "TransposeBackward0")],
    ids=["detach", "channel-shuffle"],
)
def test_untraceable_model_names_the_op(build: Any, op: str, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="Torch-Pruning cannot") as info:
        run_prune(seeded(build), {"ratio": 0.5, "round_to": None}, tmp_path, _spec(8))
    assert op in str(info.value)


def test_exported_program_without_eager_form_is_refused(tmp_path: Path) -> None:
    net = seeded(lambda: cifar_resnet(depth=8, width=16, num_classes=4))
    path = tmp_path / "user.pt2"
    torch.export.save(torch.export.export(net, (torch.randn(2, 3, 16, 16),)), str(path))
    art = load_pt2(path, _spec())
    ctx = PassContext(work_dir=tmp_path, shared={"source": art})
    assert any("needs the model as an nn.Module" in p for p in Prune({"ratio": 0.5}).check(ctx))  # before any work
    with pytest.raises(ModelFileError, match="cannot be pruned or trained.*package.module:factory"):
        Prune({"ratio": 0.5}).run(art, ctx, tmp_path / "out.pt2")


def test_unstructured_sparsity_notes_say_no_speedup(tmp_path: Path) -> None:
    net = seeded(lambda: cifar_resnet(depth=8, width=16, num_classes=4))
    out, notes, ctx = run_prune(net, {"sparsity": 0.6}, tmp_path)
    pruned = trainable_module(out, ctx)
    weights = torch.cat([c.weight.flatten() for n, c in _convs(pruned).items()])
    assert 0.55 < float((weights == 0).float().mean()) < 0.65
    assert "latency does not improve" in notes[-1] and "compressed weights shrink" in notes[-1]


def test_taylor_importance_uses_data(tmp_path: Path) -> None:
    net = seeded(lambda: cifar_resnet(depth=8, width=16, num_classes=4))
    assert any(
        "needs data for gradients" in p
        for p in Prune({"ratio": 0.5, "importance": "taylor"}).check(PassContext(work_dir=tmp_path))
    )
    rng = np.random.default_rng(0)
    arrays = {"x": rng.standard_normal((40, 3, 16, 16)).astype(np.float32), "y": rng.integers(0, 4, 40)}
    data = load_data(arrays, _spec())
    taylor, _, _ = run_prune(net, {"ratio": 0.5, "importance": "taylor", "batch_size": 8}, tmp_path, calibration=data)
    l1, _, _ = run_prune(net, {"ratio": 0.5}, tmp_path)
    assert taylor.sha256 != l1.sha256  # the ranking differs


def _image_data(n: int = 32) -> Any:
    rng = np.random.default_rng(0)
    return load_data({"x": rng.standard_normal((n, 3, 16, 16)).astype(np.float32)}, _spec())


def test_blocks_removes_the_block_that_changes_its_input_least(tmp_path: Path) -> None:
    # depth 14: two blocks per stage; four return their input's shape (not the downsampling ones). Zeroing the last
    # BN of one residual branch makes that block compute relu(x + 0) = x on its post-ReLU input: it must go first.
    net = seeded(lambda: cifar_resnet(depth=14, width=16, num_classes=4))
    with torch.no_grad():
        net.layers[2][1].bn2.weight.zero_()
        net.layers[2][1].bn2.bias.zero_()
    data = _image_data()
    x = torch.from_numpy(data.batches(8).__next__().inputs["input"])
    out, notes, ctx = run_prune(net, {"blocks": 1, "batch_size": 8}, tmp_path, calibration=data)
    pruned = trainable_module(out, ctx)
    assert isinstance(pruned.layers[2][1], nn.Identity)
    assert sum(isinstance(m, nn.Identity) for m in pruned.modules()) == 1
    note = next(n for n in notes if n.startswith("depth pruning"))
    assert "removed 1 of 4 blocks (layers.2.1)" in note and "layers.2.1 0%" in note
    args = (torch.randn(1, 3, 16, 16),)
    assert sum(layer_macs(pruned, args).values()) < sum(layer_macs(net, args).values())
    with torch.no_grad():  # that block did nothing on these inputs, so the network computes what it computed
        torch.testing.assert_close(out.module(x), net(x), rtol=1e-4, atol=1e-4)


def test_blocks_then_mac_budget_counts_against_the_original(tmp_path: Path) -> None:
    net = seeded(lambda: cifar_resnet(depth=14, width=32, num_classes=4))
    out, notes, ctx = run_prune(net, {"blocks": 2, "macs": 0.5, "batch_size": 8}, tmp_path, calibration=_image_data())
    pruned = trainable_module(out, ctx)
    assert sum(isinstance(m, nn.Identity) for m in pruned.modules()) == 2
    args = (torch.randn(1, 3, 16, 16),)
    kept = sum(layer_macs(pruned, args).values()) / sum(layer_macs(net, args).values())
    assert 0.3 < kept <= 0.5
    assert [n.split(":")[0] for n in notes[:2]] == ["depth pruning", "MAC budget 50%"]


def test_blocks_needs_data_and_enough_blocks(tmp_path: Path) -> None:
    assert any("needs data to rank the blocks" in p for p in Prune({"blocks": 1}).check(PassContext(work_dir=tmp_path)))
    net = seeded(lambda: cifar_resnet(depth=8, width=16, num_classes=4))  # one block per stage: only layers.0.0
    with pytest.raises(ConfigError, match=r"cannot remove 2 blocks: the model has 1 removable blocks .*layers\.0\.0"):
        run_prune(net, {"blocks": 2}, tmp_path, calibration=_image_data())


def test_output_is_byte_identical_across_runs(tmp_path: Path) -> None:
    net = seeded(lambda: cifar_resnet(depth=8, width=16, num_classes=4))
    digests = []
    for i in range(2):
        folder = tmp_path / str(i)
        folder.mkdir()
        run_prune(net, {"ratio": 0.4}, folder)
        digests.append((folder / "pruned.pt2").read_bytes())
    assert digests[0] == digests[1]


def test_latency_budget_search_meets_the_budget(tmp_path: Path) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, 4),
        ).eval()
    config = {"latency": 0.75, "latency_seconds": 0.4, "search_steps": 3}
    _, notes, _ = run_prune(net, config, tmp_path, _spec(32))
    note = next(n for n in notes if n.startswith("latency budget 75%"))
    assert "onnxruntime FP32" in note
    chosen = float(note.split("chose ratio ")[1].split(" (")[1].split("%")[0])
    assert chosen <= 75.0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "give a target"),
        ({"ratio": 0.3, "macs": 0.5}, "give one of ratio, macs, latency"),
        ({"ratio": 1.5}, "ratio"),
    ],
)
def test_config_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Prune(config)


def test_round_to_auto_is_this_cpus_simd_width() -> None:
    from edgeopt.evaluate.machine import simd_float_lanes
    from edgeopt.passes.torch.prune import PruneConfig

    lanes = simd_float_lanes()
    assert lanes in (8, 16)
    assert PruneConfig(ratio=0.5).round_to == lanes  # the default, resolved to a number before any work
    assert PruneConfig(ratio=0.5, round_to=4).round_to == 4 and PruneConfig(ratio=0.5, round_to=None).round_to is None
    with pytest.raises(ValueError, match="round_to"):
        PruneConfig(ratio=0.5, round_to=0)
