"""The Pipeline: whole-chain validation before any work, numerical checks, content cache, provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgeopt.artifacts.base import Artifact, ArtifactKind
from edgeopt.artifacts.onnx_model import OnnxModel
from edgeopt.cache import Cache
from edgeopt.data import load_data
from edgeopt.errors import PipelineError
from edgeopt.fileio import sha256_file
from edgeopt.passes.base import Pass, PassContext
from edgeopt.passes.onnx.simplify import Simplify
from edgeopt.pipeline import Pipeline

CHAIN = ["dynamic_batch", "simplify", "ort_optimize"]


class AddOne(Pass):
    """Adds 1 to the first output while claiming to preserve semantics: the numerical check must catch it."""

    name = "add_one_for_tests"
    input_kind = ArtifactKind.ONNX
    output_kind = ArtifactKind.ONNX

    def run(self, model: Artifact, ctx: PassContext, out_path: Path) -> Artifact:
        assert isinstance(model, OnnxModel)
        proto = onnx.ModelProto()
        proto.CopyFrom(model.proto)
        out = proto.graph.output[0].name
        for node in proto.graph.node:
            for i, name in enumerate(node.output):
                if name == out:
                    node.output[i] = out + "_before"
        proto.graph.initializer.append(numpy_helper.from_array(np.array(1, np.float32), "one"))
        proto.graph.node.append(helper.make_node("Add", [out + "_before", "one"], [out]))
        out_path.write_bytes(proto.SerializeToString())
        return OnnxModel.from_file(out_path)


class LossyAddOne(AddOne):
    """The same change, declared lossy: no numerical check."""

    name = "lossy_add_one_for_tests"
    preserves_semantics = False


class NeedsCalibration(AddOne):
    name = "needs_calibration_for_tests"
    needs_calibration = True
    preserves_semantics = False


class NeedsTraining(AddOne):
    name = "needs_training_for_tests"
    needs_training_data = True
    preserves_semantics = False


@pytest.fixture
def source(conv_onnx: Path) -> OnnxModel:
    return OnnxModel.from_file(conv_onnx)


@pytest.fixture
def ctx(tmp_path: Path) -> PassContext:
    work = tmp_path / "work"
    work.mkdir()
    return PassContext(work_dir=work)


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache")


def _nothing_done(ctx: PassContext, cache: Cache) -> bool:
    return not any(ctx.work_dir.iterdir()) and not cache.root.exists()


def test_repeated_converter_fails_before_any_work(source: OnnxModel, ctx: PassContext, cache: Cache) -> None:
    pipe = Pipeline(["export_onnx", "export_onnx"])
    problems = pipe.validate(ArtifactKind.ONNX, ctx)
    assert problems == [
        "pass 'export_onnx' takes torch but the input model gives onnx",
        "pass 'export_onnx' takes torch but pass 'export_onnx' gives onnx",
    ]
    with pytest.raises(PipelineError) as info:
        pipe.run(source, ctx, cache)
    assert info.value.problems == problems
    assert _nothing_done(ctx, cache)


def test_kind_mismatch_names_both_passes(source: OnnxModel, ctx: PassContext, cache: Cache) -> None:
    with pytest.raises(PipelineError) as info:
        Pipeline(["simplify", "export_onnx"]).run(source, ctx, cache)
    (problem,) = info.value.problems
    assert "'export_onnx' takes torch" in problem and "pass 'simplify' gives onnx" in problem
    assert _nothing_done(ctx, cache)


def test_every_construction_problem_at_once() -> None:
    with pytest.raises(PipelineError) as info:
        Pipeline(["simplfy", ("simplify", {"onnxslm": True}), {"name": "fix_batch", "batchh": 2}, 42, {"x": 1, "y": 2}])
    problems = info.value.problems
    assert len(problems) == 5
    assert "unknown pass 'simplfy'; did you mean 'simplify'?" in problems[0]
    assert "invalid config for pass 'simplify': onnxslm" in problems[1]
    assert "invalid config for pass 'fix_batch': batchh" in problems[2]
    assert "cannot read pass spec 42" in problems[3]
    assert "has no name" in problems[4]
    assert all(p in str(info.value) for p in problems)  # one error lists them all


def test_every_validation_problem_at_once(ctx: PassContext) -> None:
    pipe = Pipeline(["simplify", "export_onnx", "ort_optimize", NeedsCalibration(), NeedsTraining()])
    problems = pipe.validate(ArtifactKind.ONNX, ctx, target="some-npu")
    assert len(problems) == 4
    assert "'export_onnx' takes torch" in problems[0]
    assert "'ort_optimize' does not serve target 'some-npu'" in problems[1]
    assert "'needs_calibration_for_tests' needs calibration data" in problems[2]
    assert "'needs_training_for_tests' needs training data" in problems[3]


def test_calibration_requirement_is_met_by_data(ctx: PassContext, conv_npz: Path) -> None:
    pipe = Pipeline([NeedsCalibration()])
    assert pipe.validate(ArtifactKind.ONNX, ctx) == ["pass 'needs_calibration_for_tests' needs calibration data "
                                                     "(--calibration)"]
    ctx.calibration = load_data(conv_npz)
    assert pipe.validate(ArtifactKind.ONNX, ctx) == []


def test_registered_calibrated_passes_need_data(ctx: PassContext) -> None:
    from edgeopt.passes.registry import REGISTRY

    calibrated = [n for n in REGISTRY.names() if REGISTRY.get(n).needs_calibration]
    if not calibrated:
        pytest.skip("no registered pass needs calibration data")
    for name in calibrated:
        problems = Pipeline([name]).validate(REGISTRY.get(name).input_kind, ctx)
        assert any(f"pass '{name}' needs calibration data" in p for p in problems), problems


def test_spec_forms(source: OnnxModel) -> None:
    pipe = Pipeline([
        Simplify({"onnxsim": False}),
        "simplify",
        ("simplify", {"onnxslim": False}),
        {"simplify": {"onnxsim": False}},
        {"name": "simplify", "onnxslim": False},
        {"name": "simplify", "config": {"onnxsim": False}},
        {"fix_batch": None},
    ])
    configs = [(p.name, p.config_dict()) for p in pipe.passes]
    assert configs == [
        ("simplify", {"onnxslim": True, "onnxsim": False}),
        ("simplify", {"onnxslim": True, "onnxsim": True}),
        ("simplify", {"onnxslim": False, "onnxsim": True}),
        ("simplify", {"onnxslim": True, "onnxsim": False}),
        ("simplify", {"onnxslim": False, "onnxsim": True}),
        ("simplify", {"onnxslim": True, "onnxsim": False}),
        ("fix_batch", {"batch": 1}),
    ]
    assert pipe.output_kind == ArtifactKind.ONNX and Pipeline([]).output_kind is None


def test_run_records_checks_and_provenance(source: OnnxModel, ctx: PassContext, cache: Cache) -> None:
    digest = sha256_file(source.path)
    result = Pipeline(CHAIN).run(source, ctx, cache, target="ort-cpu")
    steps = result.steps
    assert [s.pass_name for s in steps] == CHAIN
    assert all(not s.cached for s in steps)
    for step in steps:
        assert step.check is not None and step.check["ok"] and step.check["inputs"] == "random"
        assert step.check["max_abs"] <= 1e-5 and step.check["cosine"] > 0.99999
        assert step.size_bytes > 0 and step.ops
    # The chain of hashes: source -> step 1 -> step 2 -> step 3 = the final file.
    assert steps[0].parent_sha256 == source.sha256
    for before, after in zip(steps, steps[1:], strict=False):
        assert after.parent_sha256 == before.output_sha256
    art = result.artifact
    assert art.sha256 == steps[-1].output_sha256 == sha256_file(art.path)
    assert [p.pass_name for p in art.provenance] == CHAIN
    assert [p.parent_sha256 for p in art.provenance] == [s.parent_sha256 for s in steps]
    assert art.input_specs()[0].shape[0] == "batch"  # dynamic_batch really ran
    assert sha256_file(source.path) == digest  # the input file is never modified


def test_check_uses_real_inputs_when_given(source: OnnxModel, ctx: PassContext, cache: Cache) -> None:
    inputs = {"x": np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype(np.float32)}
    result = Pipeline(["simplify"]).run(source, ctx, cache, check_inputs=inputs)
    check = result.steps[0].check
    assert check["inputs"] == "real" and check["n"] == 5  # a fixed-batch-1 model is run sample by sample


def test_second_run_hits_the_cache_with_identical_bytes(source: OnnxModel, ctx: PassContext, cache: Cache) -> None:
    first = Pipeline(CHAIN).run(source, ctx, cache)
    first_bytes = first.artifact.path.read_bytes()
    second = Pipeline(CHAIN).run(source, ctx, cache)
    assert [s.cached for s in second.steps] == [True, True, True]
    assert second.artifact.path.read_bytes() == first_bytes
    for a, b in zip(first.steps, second.steps, strict=True):
        assert (a.output_sha256, a.check, a.ops, a.config) == (b.output_sha256, b.check, b.ops, b.config)
    assert [p.to_dict() for p in second.artifact.provenance] == [p.to_dict() for p in first.artifact.provenance]


def test_config_change_misses_only_from_that_step(source: OnnxModel, ctx: PassContext, cache: Cache) -> None:
    Pipeline(["dynamic_batch", "simplify"]).run(source, ctx, cache)
    again = Pipeline(["dynamic_batch", ("simplify", {"onnxsim": False})]).run(source, ctx, cache)
    assert [s.cached for s in again.steps] == [True, False]


def test_disabled_cache_rebuilds_deterministically(source: OnnxModel, ctx: PassContext, tmp_path: Path) -> None:
    off = Cache(tmp_path / "cache", enabled=False)
    first = Pipeline(CHAIN).run(source, ctx, off)
    first_bytes = first.artifact.path.read_bytes()
    second = Pipeline(CHAIN).run(source, ctx, off)
    assert [s.cached for s in first.steps + second.steps] == [False] * 6
    assert second.artifact.path.read_bytes() == first_bytes
    assert not off.root.exists()


def test_notes_are_recorded_and_cached(conv_onnx_dynamic: Path, ctx: PassContext, cache: Cache) -> None:
    source = OnnxModel.from_file(conv_onnx_dynamic)
    for _ in range(2):
        result = Pipeline(["dynamic_batch"]).run(source, ctx, cache)
        assert result.steps[0].notes == ["dynamic_batch: already dynamic"]
        assert "notes" not in ctx.shared  # handed to the record, not left for the next pass


def test_numerical_check_catches_a_changed_model(source: OnnxModel, ctx: PassContext, cache: Cache) -> None:
    with pytest.raises(PipelineError, match="'add_one_for_tests' changed the model's outputs"):
        Pipeline(["simplify", AddOne()]).run(source, ctx, cache)


def test_lossy_pass_gets_a_record_not_a_check(source: OnnxModel, ctx: PassContext, cache: Cache, ort_run) -> None:
    result = Pipeline([LossyAddOne()]).run(source, ctx, cache)
    record = result.steps[0].check  # measured like a check, but a change by design does not fail the run
    assert record is not None and record["ok"] is None and record["kind"] == "measured"
    assert record["inputs"] == "random" and abs(record["max_abs"] - 1.0) < 1e-5 and record["cosine"] < 1.0
    x = np.zeros((1, 1, 8, 8), np.float32)
    np.testing.assert_allclose(ort_run(result.artifact.path, {"x": x})[0], ort_run(source.path, {"x": x})[0] + 1)
