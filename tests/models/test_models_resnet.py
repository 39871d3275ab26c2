"""ResNet-18 and CIFAR ResNet-20: shapes, sizes, deterministic factories, ONNX parity."""

from __future__ import annotations

import pytest
import torch

from edgeopt.errors import ConfigError
from edgeopt.models.resnet import cifar_resnet, cifar_resnet20_factory, resnet18, resnet18_factory


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_resnet18_matches_torchvision_size() -> None:
    assert _n_params(resnet18()) == 11_689_512  # torchvision.models.resnet18


def test_cifar_resnet20_size_and_validation() -> None:
    assert 0.26e6 < _n_params(cifar_resnet(20)) < 0.28e6
    assert _n_params(cifar_resnet(20, width=8)) < _n_params(cifar_resnet(20))
    with pytest.raises(ConfigError, match="6n\\+2"):
        cifar_resnet(21)


def test_resnet18_factory_forward_and_onnx(onnx_parity) -> None:
    model = resnet18_factory()
    assert not model.training
    spec = model.edgeopt_inputs[0]
    assert spec.shape == ("batch", 3, 224, 224)
    out = onnx_parity(model, spec.concrete_shape(2))
    assert out.shape == (3, 1000)
    assert out.std() > 0.1  # random BN statistics keep the logits from collapsing


def test_cifar_resnet20_factory_is_deterministic_and_exports(onnx_parity) -> None:
    before = torch.random.get_rng_state()
    a, b = cifar_resnet20_factory(), cifar_resnet20_factory()
    assert torch.equal(torch.random.get_rng_state(), before)  # the factory leaves the global RNG alone
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    bn = a.stem[1]
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    assert a.edgeopt_inputs[0].shape == ("batch", 3, 32, 32)
    assert onnx_parity(a, (2, 3, 32, 32)).shape == (3, 10)
