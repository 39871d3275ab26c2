"""Which nodes TensorRT's ONNX parser has no importer for, found without TensorRT: ops outside its list, ops from
other domains, nodes inside If/Loop subgraphs; the reference networks edgeopt ships parse in full."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from edgeopt.backends.tensorrt.parser_ops import PARSER_OPS, describe_unparsed, unparsed_nodes


def test_finds_unknown_ops_other_domains_and_subgraph_nodes() -> None:
    then_graph = helper.make_graph([helper.make_node("Unique", ["x"], ["u"], name="inner_unique")], "then", [],
                                   [helper.make_tensor_value_info("u", TensorProto.FLOAT, None)])
    else_graph = helper.make_graph([helper.make_node("Identity", ["x"], ["e"], name="inner_id")], "else", [],
                                   [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("FusedConv", ["r"], ["f"], name="ms_conv", domain="com.microsoft"),
        helper.make_node("ReduceSum", ["f"], ["s"], name="sum", keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["c"], name="gt"),
        helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then_graph, else_branch=else_graph),
        helper.make_node("Det", ["y"], ["d"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
                              [helper.make_tensor_value_info("d", TensorProto.FLOAT, [])],
                              [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])])
    model = helper.make_model(graph)
    found = unparsed_nodes(model)
    assert found == ["com.microsoft.FusedConv 'ms_conv'", "Unique 'inner_unique'", "Det (output 'd')"]
    assert describe_unparsed(found).startswith("TensorRT 10.1's ONNX parser has no importer for: com.microsoft")
    assert "(3 nodes)" in describe_unparsed(found)


def test_reference_networks_parse_in_full(tmp_path: Path) -> None:
    """ResNet-18, MobileNetV2 and EfficientNet-Lite0, exported and simplified as edgeopt compiles them, use only ops
    the parser imports."""
    from edgeopt.artifacts.base import TensorSpec
    from edgeopt.artifacts.torch_model import TorchModel
    from edgeopt.cache import Cache
    from edgeopt.models.efficientnet_lite import efficientnet_lite0
    from edgeopt.models.mobilenet_v2 import mobilenet_v2
    from edgeopt.models.resnet import resnet18
    from edgeopt.passes.base import PassContext
    from edgeopt.pipeline import Pipeline

    specs = [TensorSpec("input", ("batch", 3, 64, 64))]
    for i, net in enumerate((resnet18(num_classes=10), mobilenet_v2(num_classes=10),
                             efficientnet_lite0(pretrained=False))):
        work = tmp_path / f"work{i}"
        work.mkdir()
        result = Pipeline(["export_onnx", "simplify"]).run(TorchModel.from_module(net, specs),
                                                           PassContext(work_dir=work), Cache(tmp_path / "cache"))
        model = onnx.load(str(result.artifact.path))
        assert unparsed_nodes(model) == [], type(net).__name__
        assert {n.op_type for n in model.graph.node} <= PARSER_OPS
