"""Write and read .tflite flatbuffers with the LiteRT schema's object API (no TensorFlow)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.errors import BackendUnavailable, ConfigError, ModelFileError

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
METADATA_KEY = "edgeopt_io"
_ALIGN = 16
# Operators LiteRT registers only from a later version (BROADCAST_TO version 1 was never a runtime op).
_MIN_VERSION = {"BROADCAST_TO": 2}
# Builtin codes above 127 do not fit the deprecated int8 field; it then holds this placeholder.
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127

NP_TO_TFL = {
    "float32": "FLOAT32",
    "float16": "FLOAT16",
    "int32": "INT32",
    "uint8": "UINT8",
    "int64": "INT64",
    "bool": "BOOL",
    "int16": "INT16",
    "int8": "INT8",
}


def schema() -> Any:
    """The LiteRT flatbuffer schema module (lazily imported: ai-edge-litert is an optional dependency)."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError as exc:
        raise BackendUnavailable("ai-edge-litert", "tflite") from exc
    return schema_py_generated


def tfl_type(dtype: str) -> int:
    """TFLite TensorType code of a numpy dtype name."""
    if dtype not in NP_TO_TFL:
        raise ConfigError(f"tensors of type {dtype} have no TFLite equivalent here",
                          f"cast them to one of {', '.join(NP_TO_TFL)} in the ONNX model")
    return int(getattr(schema().TensorType, NP_TO_TFL[dtype]))


def tfl_dtype_name(code: int) -> str:
    """Numpy dtype name of a TFLite TensorType code."""
    names = {int(getattr(schema().TensorType, v)): k for k, v in NP_TO_TFL.items()}
    return names.get(code, f"tflite_type_{code}")


@dataclass(frozen=True)
class QuantSpec:
    """Quantization parameters of a TFLite tensor (per-tensor when scale has one element)."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0


def _pack_aligned_buffer(builder: Any, data: bytes) -> int:
    """Pack one Buffer table with its data 16-byte aligned (the schema's force_align), as the C++ writer does."""
    s = schema()
    vec = None
    if data:
        builder.StartVector(1, len(data), _ALIGN)
        builder.head = builder.head - len(data)
        builder.Bytes[builder.head : builder.head + len(data)] = data
        builder.vectorNumElems = len(data)
        vec = builder.EndVector()
    s.BufferStart(builder)
    if vec is not None:
        s.BufferAddData(builder, vec)
    return int(s.BufferEnd(builder))


@dataclass
class ModelWriter:
    """Accumulates tensors, constant buffers, operator codes and operators of one subgraph, then serializes."""

    tensors: list[Any] = field(default_factory=list)
    buffers: list[bytes] = field(default_factory=lambda: [b""])
    operators: list[Any] = field(default_factory=list)
    opcodes: list[tuple[int, int]] = field(default_factory=list)
    _buffer_index: dict[str, int] = field(default_factory=dict)
    _names: set[str] = field(default_factory=set)

    def unique_name(self, name: str) -> str:
        """`name`, or `name_1`, `name_2`... if it is taken (names are kept unique for readability)."""
        out, i = name, 0
        while out in self._names:
            i += 1
            out = f"{name}_{i}"
        self._names.add(out)
        return out

    def add_tensor(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: str,
        data: np.ndarray | None = None,
        quant: QuantSpec | None = None,
    ) -> int:
        """Add a tensor (constant when `data` is given; equal constants share one buffer); returns its index."""
        s = schema()
        t = s.TensorT()
        t.name = self.unique_name(name)
        t.shape = np.asarray(shape, dtype=np.int32)
        t.type = tfl_type(dtype)
        t.buffer = 0
        if data is not None:
            raw = np.ascontiguousarray(data, dtype=np.dtype(dtype)).tobytes()
            key = hashlib.sha256(raw).hexdigest() + dtype
            if key not in self._buffer_index:
                self._buffer_index[key] = len(self.buffers)
                self.buffers.append(raw)
            t.buffer = self._buffer_index[key]
        if quant is not None:
            q = s.QuantizationParametersT()
            q.scale = np.asarray(quant.scale, dtype=np.float32)
            q.zeroPoint = np.asarray(quant.zero_point, dtype=np.int64)
            q.quantizedDimension = int(quant.axis)
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def tensor_shape(self, index: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.tensors[index].shape)

    def rename(self, index: int, name: str) -> None:
        """Give tensor `index` exactly `name`, renaming any other holder of it (model I/O keep their ONNX names)."""
        for i, t in enumerate(self.tensors):
            if i != index and t.name == name:
                t.name = self.unique_name(name + "_internal")
        self.tensors[index].name = name
        self._names.add(name)

    def opcode(self, op: str, version: int = 1) -> int:
        """Index of the operator code for builtin `op` (a BuiltinOperator name) at `version`."""
        code = int(getattr(schema().BuiltinOperator, op))
        key = (code, max(version, _MIN_VERSION.get(op, 1)))
        if key not in self.opcodes:
            self.opcodes.append(key)
        return self.opcodes.index(key)

    def add_op(
        self,
        op: str,
        inputs: list[int],
        outputs: list[int],
        options: Any = None,
        options_type: str | None = None,
        version: int = 1,
    ) -> None:
        """Append an operator; `options` is a schema *OptionsT object whose union name is `options_type`."""
        s = schema()
        o = s.OperatorT()
        o.opcodeIndex = self.opcode(op, version)
        o.inputs = np.asarray(inputs, dtype=np.int32)
        o.outputs = np.asarray(outputs, dtype=np.int32)
        if options is not None:
            name = options_type or type(options).__name__[:-1]
            o.builtinOptionsType = int(getattr(s.BuiltinOptions, name))
            o.builtinOptions = options
        self.operators.append(o)

    def serialize(
        self, inputs: list[int], outputs: list[int], metadata: dict[str, Any] | None = None
    ) -> bytes:
        """The finished flatbuffer (deterministic: same calls, same bytes)."""
        import flatbuffers

        s = schema()
        model = s.ModelT()
        model.version = SCHEMA_VERSION
        model.description = "edgeopt"
        codes = []
        for code, version in self.opcodes:
            oc = s.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, _PLACEHOLDER_FOR_GREATER_OP_CODES)
            oc.version = version
            codes.append(oc)
        model.operatorCodes = codes
        sg = s.SubGraphT()
        sg.name = "main"
        sg.tensors = self.tensors
        sg.operators = self.operators
        sg.inputs = np.asarray(inputs, dtype=np.int32)
        sg.outputs = np.asarray(outputs, dtype=np.int32)
        model.subgraphs = [sg]
        sig = s.SignatureDefT()
        sig.signatureKey = "serving_default"
        sig.subgraphIndex = 0
        sig.inputs = [_tensor_map(self.tensors[i].name, i) for i in inputs]
        sig.outputs = [_tensor_map(self.tensors[i].name, i) for i in outputs]
        model.signatureDefs = [sig]
        buffers = list(self.buffers)
        if metadata is not None:
            meta = s.MetadataT()
            meta.name = METADATA_KEY
            meta.buffer = len(buffers)
            buffers.append(json.dumps(metadata, sort_keys=True).encode())
            model.metadata = [meta]
        model.buffers = []
        builder = flatbuffers.Builder(1024 + sum(len(b) for b in buffers))
        # Buffers are packed by hand (aligned); the model table then refers to their offsets.
        offsets = [_pack_aligned_buffer(builder, b) for b in reversed(buffers)][::-1]
        model_offset = _pack_model(builder, model, offsets)
        builder.Finish(model_offset, file_identifier=FILE_IDENTIFIER)
        return bytes(builder.Output())


def _tensor_map(name: str, index: int) -> Any:
    s = schema()
    m = s.TensorMapT()
    m.name = name
    m.tensorIndex = index
    return m


def _offsets_vector(builder: Any, start: Any, offsets: list[int]) -> int:
    """A flatbuffer vector of already packed tables (`start` is the schema's ModelStart...Vector)."""
    start(builder, len(offsets))
    for off in reversed(offsets):
        builder.PrependUOffsetTRelative(off)
    return int(builder.EndVector())


def _pack_model(builder: Any, model: Any, buffer_offsets: list[int]) -> int:
    """ModelT.Pack with pre-packed buffers (the generated Pack would copy them byte by byte, unaligned)."""
    s = schema()
    codes_vec = _offsets_vector(builder, s.ModelStartOperatorCodesVector,
                                [c.Pack(builder) for c in model.operatorCodes])
    sgs_vec = _offsets_vector(builder, s.ModelStartSubgraphsVector, [g.Pack(builder) for g in model.subgraphs])
    desc = builder.CreateString(model.description)
    bufs_vec = _offsets_vector(builder, s.ModelStartBuffersVector, buffer_offsets)
    meta_vec = None
    if model.metadata:
        meta_vec = _offsets_vector(builder, s.ModelStartMetadataVector, [m.Pack(builder) for m in model.metadata])
    sigs_vec = _offsets_vector(builder, s.ModelStartSignatureDefsVector,
                               [g.Pack(builder) for g in model.signatureDefs])
    s.ModelStart(builder)
    s.ModelAddVersion(builder, model.version)
    s.ModelAddOperatorCodes(builder, codes_vec)
    s.ModelAddSubgraphs(builder, sgs_vec)
    s.ModelAddDescription(builder, desc)
    s.ModelAddBuffers(builder, bufs_vec)
    if meta_vec is not None:
        s.ModelAddMetadata(builder, meta_vec)
    s.ModelAddSignatureDefs(builder, sigs_vec)
    return int(s.ModelEnd(builder))


@dataclass(frozen=True)
class TensorInfo:
    """A tensor of a .tflite file as read back: name, shape, dtype and quantization."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: QuantSpec | None


@dataclass(frozen=True)
class TfliteSummary:
    """What the artifact needs from a .tflite file: I/O tensors, op histogram, edgeopt metadata."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    ops: dict[str, int]
    metadata: dict[str, Any]


def _tensor_info(t: Any) -> TensorInfo:
    q = t.Quantization()
    quant = None
    if q is not None and q.ScaleLength() > 0:
        quant = QuantSpec(
            tuple(float(x) for x in q.ScaleAsNumpy()),
            tuple(int(x) for x in q.ZeroPointAsNumpy()) if q.ZeroPointLength() else (0,) * q.ScaleLength(),
            int(q.QuantizedDimension()),
        )
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    return TensorInfo(t.Name().decode(), shape, tfl_dtype_name(t.Type()), quant)


def read_summary(path: Path) -> TfliteSummary:
    """Read a .tflite file's I/O, op histogram and edgeopt metadata (no interpreter needed)."""
    s = schema()
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise ModelFileError(f"{path} is not a TFLite flatbuffer (no TFL3 identifier)", "pass a .tflite file")
    try:
        model = s.Model.GetRootAs(data, 0)
        names = {int(v): k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
        codes = []
        for i in range(model.OperatorCodesLength()):
            oc = model.OperatorCodes(i)
            code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
            codes.append(names.get(code, f"CUSTOM_{code}") if code != s.BuiltinOperator.CUSTOM else "CUSTOM")
        ops: dict[str, int] = {}
        sg = model.Subgraphs(0)
        for i in range(sg.OperatorsLength()):
            name = codes[sg.Operators(i).OpcodeIndex()]
            ops[name] = ops.get(name, 0) + 1
        inputs = tuple(_tensor_info(sg.Tensors(int(i))) for i in sg.InputsAsNumpy())
        outputs = tuple(_tensor_info(sg.Tensors(int(i))) for i in sg.OutputsAsNumpy())
        metadata: dict[str, Any] = {}
        for i in range(model.MetadataLength()):
            m = model.Metadata(i)
            if m.Name() is not None and m.Name().decode() == METADATA_KEY:
                metadata = json.loads(model.Buffers(m.Buffer()).DataAsNumpy().tobytes().decode())
    except (IndexError, ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise ModelFileError(f"{path} is not a readable TFLite model ({type(exc).__name__})", "re-convert it") from exc
    return TfliteSummary(inputs, outputs, dict(sorted(ops.items())), metadata)
