"""distill and finetune: the source teaches the pruned student; budgets, labels, determinism, resume, the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import edgeopt
from edgeopt.artifacts.base import TensorSpec
from edgeopt.artifacts.torch_model import TorchModel, load_pt2
from edgeopt.cache import Cache
from edgeopt.data import load_data
from edgeopt.errors import PipelineError
from edgeopt.models.digits import DIGITS_INPUTS, digits_data, train_digits_cnn
from edgeopt.passes.base import PassContext
from edgeopt.passes.torch.distill import Distill
from edgeopt.passes.torch.eager_module import trainable_module
from edgeopt.passes.torch.finetune import Finetune
from edgeopt.passes.torch.prune import Prune
from edgeopt.passes.torch.training import TrainConfig, train
from edgeopt.pipeline import Pipeline

SPECS = list(DIGITS_INPUTS)


@pytest.fixture(scope="module")
def teacher() -> TorchModel:
    """The digits CNN trained for a few epochs (seconds): the source and teacher."""
    model, _, _ = train_digits_cnn(seed=0, epochs=4)
    return TorchModel.from_module(model, SPECS)


@pytest.fixture(scope="module")
def digits() -> dict[str, Any]:
    arrays = digits_data()
    return {
        "train": load_data({"x": arrays["x_train"], "y": arrays["y_train"]}, SPECS),
        "unlabelled": load_data({"x": arrays["x_train"]}, SPECS),
        "test": load_data({"x": arrays["x_test"], "y": arrays["y_test"]}, SPECS),
    }


def _ctx(tmp: Path, teacher: TorchModel, data: Any, **shared: Any) -> PassContext:
    return PassContext(
        work_dir=tmp, train_data=data["train"], eval_data=data["test"], shared={"source": teacher, **shared}
    )


@pytest.fixture(scope="module")
def pruned(teacher: TorchModel, digits: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> TorchModel:
    """The teacher pruned to half its channels (accuracy drops) and reloaded from its .pt2."""
    folder = tmp_path_factory.mktemp("pruned")
    Prune({"ratio": 0.5}).run(teacher, _ctx(folder, teacher, digits), folder / "pruned.pt2")
    return load_pt2(folder / "pruned.pt2", None)


def _top1(model: TorchModel, data: Any) -> float:
    batch = data.take(len(data))
    return float(np.mean(model.run(batch.inputs)[0].argmax(1) == batch.labels))


def _run(p: Any, model: TorchModel, ctx: PassContext, out: Path) -> tuple[TorchModel, list[str]]:
    p.run(model, ctx, out)
    return load_pt2(out, None), ctx.shared.get("notes", [])


def test_distill_recovers_the_pruned_model(teacher, pruned, digits, tmp_path: Path) -> None:
    out, notes = _run(Distill({"epochs": 3, "lr": 0.01}), pruned, _ctx(tmp_path, teacher, digits), tmp_path / "d.pt2")
    before, after, ref = _top1(pruned, digits["test"]), _top1(out, digits["test"]), _top1(teacher, digits["test"])
    assert after > before + 0.05 and after > ref - 0.1
    assert out.input_specs()[0].name == "input"
    assert "distilled from the source (T=4, hard_weight=0.5" in notes[-1] and "top-1" in notes[-1]


def test_distill_is_deterministic(teacher, pruned, digits, tmp_path: Path) -> None:
    blobs = []
    for i in range(2):
        out = tmp_path / f"{i}.pt2"
        Distill({"steps": 12}).run(pruned, _ctx(tmp_path, teacher, digits), out)
        blobs.append(out.read_bytes())
    assert blobs[0] == blobs[1]


def test_training_resumes_exactly_after_an_interruption(teacher, pruned, digits, tmp_path: Path) -> None:
    cfg = TrainConfig(steps=20, checkpoint_every=5, progress=False)

    def loss(net: torch.nn.Module, x: tuple[torch.Tensor, ...], y: torch.Tensor | None) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(net(*x), y)

    ctx = _ctx(tmp_path, teacher, digits, checkpoint_dir=tmp_path / "ckpt")
    whole = trainable_module(pruned, ctx)
    train(whole, loss, cfg, ctx, SPECS, "test")
    parts = trainable_module(pruned, ctx)
    with pytest.raises(KeyboardInterrupt):
        train(parts, loss, cfg, ctx, SPECS, "test", stop_at=7)
    assert (tmp_path / "ckpt" / "train.ckpt").is_file()
    resumed = trainable_module(pruned, ctx)
    summary = train(resumed, loss, cfg, ctx, SPECS, "test")
    assert summary["resumed_from"] == 7 and not (tmp_path / "ckpt" / "train.ckpt").exists()
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_budget_and_label_problems_are_reported_before_work(teacher, digits, tmp_path: Path) -> None:
    assert any("budget of 0 steps" in p for p in Distill({"steps": 0}).check(_ctx(tmp_path, teacher, digits)))
    assert any("not both" in p for p in Distill({"steps": 3, "epochs": 1}).check(_ctx(tmp_path, teacher, digits)))
    unlabelled = {**digits, "train": digits["unlabelled"]}
    problems = Distill({"steps": 3}).check(_ctx(tmp_path, teacher, unlabelled))
    assert any("--distill-hard-weight 0" in p for p in problems)
    assert not Distill({"steps": 3}).check(_ctx(tmp_path, teacher, unlabelled, distill_hard_weight=0.0))
    assert any(
        "needs labelled training data" in p for p in Finetune({"steps": 3}).check(_ctx(tmp_path, teacher, unlabelled))
    )
    no_teacher = PassContext(work_dir=tmp_path, train_data=digits["train"])
    assert any("teacher" in p for p in Distill().check(no_teacher))


def test_soft_label_only_distillation_and_feature_matching(teacher, pruned, digits, tmp_path: Path) -> None:
    unlabelled = {**digits, "train": digits["unlabelled"]}
    ctx = _ctx(tmp_path, teacher, unlabelled, distill_hard_weight=0.0)
    config = {"epochs": 2, "lr": 0.01, "feature_layers": ["features.3"], "feature_weight": 0.5}
    out, notes = _run(Distill(config), pruned, ctx, tmp_path / "soft.pt2")
    assert "hard_weight=0," in notes[-1] and "feature_weight=0.5" in notes[-1]
    assert _top1(out, digits["test"]) > _top1(pruned, digits["test"])


def test_finetune_baseline(teacher, pruned, digits, tmp_path: Path) -> None:
    out, notes = _run(Finetune({"epochs": 2, "lr": 0.01}), pruned, _ctx(tmp_path, teacher, digits), tmp_path / "f.pt2")
    assert notes[-1].startswith("fine-tuned with cross-entropy: ")
    assert _top1(out, digits["test"]) > _top1(pruned, digits["test"])


def test_pipeline_caches_and_checkpoints_by_key(teacher, digits, tmp_path: Path) -> None:
    pipe = Pipeline([("prune", {"ratio": 0.5}), ("distill", {"steps": 4})])
    cache = Cache(tmp_path / "cache")
    ctx = _ctx(tmp_path / "work", teacher, digits)
    first = pipe.run(teacher, ctx, cache, check_inputs=dict(digits["test"].take(8).inputs))
    assert ctx.shared["checkpoint_dir"].parent == tmp_path / "cache" / "checkpoints"
    for step in first.steps:  # each pass's numbers vs its input, recorded (a change by design: no pass/fail)
        assert step.check is not None and step.check["kind"] == "measured" and step.check["inputs"] == "real"
        assert step.check["n"] == 8 and 0.0 <= step.check["top1_agreement"] <= 1.0 and step.check["cosine"] < 1.0
    second = pipe.run(teacher, _ctx(tmp_path / "work2", teacher, digits), cache)
    assert [s.cached for s in second.steps] == [True, True]
    assert first.artifact.sha256 == second.artifact.sha256
    assert [p.pass_name for p in second.artifact.provenance] == ["prune", "distill"]


def test_dry_run_without_training_data_fails(teacher, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"pass 'distill' needs training data \(--train\)"):
        edgeopt.compile(
            teacher.module,
            example_inputs=torch.randn(1, 1, 8, 8),
            out=str(tmp_path / "out"),
            explore={"prune": [0.5], "recovery": ["distill"]},
            dry_run=True,
        )


def test_input_names_survive_the_torch_chain(tmp_path: Path) -> None:
    spec = [TensorSpec("pixels", ("batch", 1, 8, 8), "float32")]
    model, _, _ = train_digits_cnn(seed=1, epochs=1)
    art = TorchModel.from_module(model, spec)
    Prune({"ratio": 0.5}).run(art, PassContext(work_dir=tmp_path, shared={"source": art}), tmp_path / "p.pt2")
    assert load_pt2(tmp_path / "p.pt2", None).input_specs() == spec
